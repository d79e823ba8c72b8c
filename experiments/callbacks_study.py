"""Improving the learning curve (report 002): early stopping, reduce-LR-on-plateau, and a
dropout grid, on the Keras CIFAR CNN with BatchNorm.

Report 002 added an early stopper and learning-rate reduction on the validation loss, and
grid-searched the dropout rate (best: 50 %).  Here every setting trains --seeds seeds; the
dropout grid's settings and seeds all train as one vmapped call.  Writes curves with and
without each callback, the epochs each run trained and its best and final accuracy, and the
dropout grid's table and plot.  ``dropout_rate`` is the conv blocks' rate; the dense layer
drops twice as much, so the grid stops below 0.5.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Sequence

from jaxcv import experiment
from jaxcv.models import get_model
from jaxcv.train import EarlyStopping, ReduceLROnPlateau, make_optimizer
from jaxcv.viz import FIT_COLUMNS, fit_row, markdown_table, mean_std, plot_lines, plot_runs

STUDY = "callbacks_study"


def rates(text: str) -> list[float]:
    """argparse type: comma-separated dropout rates in [0, 0.5)."""
    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0 <= v < 0.5 for v in values):
        raise argparse.ArgumentTypeError(f"rates must be comma-separated numbers in [0, 0.5), got {text!r}")
    return values


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="cifar10", epochs=30, batch_size=128, seeds=3,
                          optimizer="adam", lr=1e-3)
    p.add_argument("--patience", type=experiment.positive_int, default=5, help="early stopping patience")
    p.add_argument("--lr-patience", type=experiment.positive_int, default=3,
                   help="epochs without improvement before the learning rate drops")
    p.add_argument("--lr-factor", type=experiment.positive_float, default=0.2, help="the drop")
    p.add_argument("--dropout-rates", type=rates, default=[0.0, 0.1, 0.2, 0.3, 0.4],
                   help="comma-separated dropout rates of the grid (trained as one vmapped call)")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data()

    model, optimizer = get_model("cifar_cnn_bn", num_classes=num_classes), make_optimizer(args.optimizer, args.lr)
    stop = EarlyStopping("val_loss", patience=args.patience)
    reduce = ReduceLROnPlateau("val_loss", factor=args.lr_factor, patience=args.lr_patience)
    settings = {"none": (), "early_stopping": (stop,), "reduce_lr": (reduce,), "both": (reduce, stop)}
    results = {name: study.run(name, model, train, test, optimizer=optimizer, callbacks=callbacks)
               for name, callbacks in settings.items()}
    plot_runs(results, study.figure("curves"), title=f"cifar_cnn_bn on {args.dataset}: callbacks on the validation loss")
    rows = [[name, mean_std([len(r.history) for r in rs], ".1f"),
             mean_std([min(e["lr_scale"] for e in r.history) for r in rs], ".3g"), *fit_row(rs)]
            for name, rs in results.items()]
    callbacks_table = markdown_table(["callbacks", "epochs trained", "final lr scale", *FIT_COLUMNS], rows)

    grid = study.sweep("dropout", model, train, test, {"dropout_rate": args.dropout_rates}, optimizer=optimizer)
    grid_table = markdown_table(["setting", *FIT_COLUMNS], [[v, *fit_row(rs)] for v, rs in grid.items()])
    accuracy = [statistics.fmean(r.history[-1]["val_accuracy"] for r in rs) for rs in grid.values()]
    best = max(accuracy)
    plot_lines({"final val accuracy": (args.dropout_rates, accuracy)}, study.figure("dropout"),
               xlabel="dropout rate (conv blocks; dense 2×)", ylabel="accuracy", title="dropout grid")
    plot_runs(grid, study.figure("dropout_curves"), title=f"dropout grid on {args.dataset}")
    print(callbacks_table, grid_table, sep="\n\n")
    study.write_summary(
        f"# Callbacks and dropout on {args.dataset}\n\n`cifar_cnn_bn`, {args.optimizer} lr {args.lr}, batch "
        f"{args.batch_size}, up to {args.epochs} epochs, {args.seeds} seed(s) (mean ± std).\n\n## Callbacks\n\n"
        f"Early stopping: patience {args.patience} on the validation loss; reduce-LR: × {args.lr_factor} after "
        f"{args.lr_patience} epochs without improvement.\n\n{callbacks_table}\n\n![curves](curves.png)\n\n"
        f"## Dropout grid\n\nBest: rate {args.dropout_rates[accuracy.index(best)]:g} "
        f"({best:.3f}).\n\n{grid_table}\n\n![dropout](dropout.png)\n\n![dropout curves](dropout_curves.png)\n")


if __name__ == "__main__":
    experiment.main(run)
