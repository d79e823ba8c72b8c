from jaxcv.train import FitResult
from jaxcv.viz import FIT_COLUMNS, epoch_seconds, fit_row, plot_lines


def _result(accuracies, seconds, models, compile_seconds=2.0, last_loss=0.5):
    history = [{"train_loss": 1.0, "train_accuracy": a + 0.1, "val_accuracy": a, "epoch_seconds": s, "models": models}
               for a, s in zip(accuracies, seconds)]
    history[-1]["train_loss"] = last_loss
    return FitResult(state=None, history=history, compile_seconds=compile_seconds)


def test_fit_row_summarises_seeds_and_shares_vmapped_epochs():
    results = [_result([0.5, 0.7, 0.6], [3.0, 3.0, 6.0], models=3),
               _result([0.4, 0.8, 0.8], [3.0, 3.0, 6.0], models=3, compile_seconds=4.0)]
    assert epoch_seconds(results) == 1.0  # 3 models shared each 3-second epoch
    row = dict(zip(FIT_COLUMNS, fit_row(results)))
    assert row["final val acc"] == "0.700 ± 0.141"
    assert row["best val acc"] == "0.750 ± 0.071"
    assert row["train − val acc"] == "0.100 ± 0.000"
    assert row["s / epoch / model"] == "1.00" and row["compile s"] == "3.0"


def test_fit_row_marks_failed_seeds_and_leaves_them_out():
    ok = [_result([0.5, 0.7], [3.0, 3.0], models=3), _result([0.4, 0.8], [3.0, 3.0], models=3)]
    diverged = _result([0.9, 0.1], [3.0, 3.0], models=3, last_loss=float("nan"))
    row = dict(zip(FIT_COLUMNS, fit_row([*ok, diverged])))
    assert row["final val acc"] == "0.750 ± 0.071 (1 of 3 seeds failed)" and row["best val acc"] == "0.750 ± 0.071"
    assert fit_row([diverged])[0] == "failed"


def test_plot_lines(tmp_path):
    path = plot_lines({"a": ([16, 64, 256], [3.0, 1.0, 0.5]), "b": ([16, 64, 256], [2.0, 1.5, 1.0])},
                      tmp_path / "lines.png", xlabel="batch size", ylabel="s", logx=True, title="t")
    assert path.stat().st_size > 5_000
