"""Report 004's studies, run in-process on the embedded shapes for one short epoch (each
script's command line is checked in test_experiments.py)."""

import pytest

from conftest import study
from jaxcv.errors import UsageError

pytestmark = pytest.mark.optimized  # they train for real: conftest.py

SMALL = ("--epochs", "1", "--seeds", "1", "--train-size", "64", "--test-size", "64")


def _figures(out, *names):
    for name in names:
        assert (out / f"{name}.png").stat().st_size > 5_000, name


def test_shapes_classification(shapes_easy, shapes_hard, run_study, tmp_path, capsys):
    history, summary = run_study("shapes_classification", tmp_path, *SMALL)
    models = ("shapes_linear", "shapes_shallow_cnn", "shapes_deep_cnn")
    assert set(history) == {f"{task}/{m}" for task in ("easy", "hard") for m in models}
    assert "| shapes_linear | 15,555 |" in summary and "| shapes_deep_cnn | 7,187 |" in summary
    assert "easy test acc" in capsys.readouterr().out
    _figures(tmp_path, "curves_easy", "curves_hard", "linear_weights")

    with pytest.raises(UsageError, match="shapes/hrad"):  # the hard task's dataset, refused before the easy task trains
        run_study("shapes_classification", tmp_path / "typo", *SMALL, "--dataset", "shapes/hrad")
    assert not (tmp_path / "typo" / "checkpoints").exists()


def test_shapes_regression(shapes_triangles, run_study, tmp_path):
    history, summary = run_study("shapes_regression", tmp_path, *SMALL, "--examples", "4")
    assert set(history) == {"sorted", "unsorted"} and "val_matched_mse" in history["sorted"]["0"][0]
    assert "| sorted |" in summary and "| unsorted |" in summary and "matched" in summary
    _figures(tmp_path, "curves", "triangles")


def test_shapes_denoising(shapes_denoise, run_study, tmp_path):
    history, summary = run_study("shapes_denoising", tmp_path, *SMALL, "--batch-size", "32")
    assert "val_psnr" in history["hourglass"]["0"][0]
    assert "| hourglass | 46,913 |" in summary and "noisy input PSNR" in summary
    _figures(tmp_path, "curves", "denoised")


@pytest.mark.parametrize("script,task", [("shapes_regression", "shapes/triangles"),
                                         ("shapes_denoising", "shapes/denoise")])
def test_a_dataset_without_the_tasks_targets_is_a_usage_error(script, task, shapes_easy, run_study, tmp_path):
    """One line and exit code 2 from the command line (``experiment.main``), not a traceback."""
    with pytest.raises(UsageError, match=f"use {task}"):
        run_study(script, tmp_path, *SMALL, "--dataset", "shapes/easy")


@pytest.mark.parametrize("script,words", [("shapes_classification", "--easy-dataset"), ("shapes_regression", "sorted"),
                                          ("shapes_denoising", "PSNR")])
def test_help_is_clear(script, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        study(script).run(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and words in out and "--epochs" in out
