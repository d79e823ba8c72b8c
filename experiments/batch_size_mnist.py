"""Batch size on MNIST (reports 000, 001): the same CNN and optimizer at batch sizes 16 … 1024.

Report 001 saw "no perceptible difference" in accuracy and epochs of 28 s against 40 s.  This
study writes, per batch size, the validation-accuracy curves, the final accuracy and the
seconds per epoch (the whole epoch is one compiled scan, so small batches pay per step, not
per Python call), with a plot of epoch time and accuracy against batch size.
"""

from __future__ import annotations

import statistics
from typing import Sequence

from jaxcv import experiment
from jaxcv.errors import UsageError
from jaxcv.models import get_model
from jaxcv.train import make_optimizer
from jaxcv.viz import FIT_COLUMNS, epoch_seconds, fit_row, markdown_table, plot_lines, plot_runs

STUDY = "batch_size_mnist"


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="mnist", epochs=12, batch_size=128, seeds=3,
                          optimizer="adadelta", lr=1.0)
    p.add_control("--batch-sizes", type=experiment.positive_ints, default=(16, 32, 64, 128, 256, 512, 1024),
                  help="comma-separated batch sizes, one variant each (--batch-size is unused)")
    p.add_argument("--model", choices=("mnist_cnn", "keras_mnist_cnn"), default="mnist_cnn",
                   help="report 000's CNN or report 001's Keras example")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data()
    if too_large := [b for b in args.batch_sizes if b > len(train["label"])]:  # refused before the others train
        raise UsageError(f"--batch-sizes {','.join(map(str, too_large))}: {len(train['label']):,} training examples "
                         "make no batch of that size; drop them or train on more")

    model, optimizer = get_model(args.model, num_classes=num_classes), make_optimizer(args.optimizer, args.lr)
    results = {f"batch {b}": study.run(f"batch{b}", model, train, test, batch_size=b, optimizer=optimizer)
               for b in args.batch_sizes}
    plot_runs(results, study.figure("curves"), title=f"{args.model} on {args.dataset} by batch size")
    rows = [[v, *fit_row(rs)] for v, rs in results.items()]
    seconds = [epoch_seconds(rs) for rs in results.values()]
    accuracy = [statistics.fmean(r.history[-1]["val_accuracy"] for r in rs) for rs in results.values()]
    plot_lines({"s / epoch / model": (args.batch_sizes, seconds)}, study.figure("epoch_seconds"),
               xlabel="batch size", ylabel="seconds per epoch", title="epoch time by batch size", logx=True)
    plot_lines({"final val accuracy": (args.batch_sizes, accuracy)}, study.figure("accuracy"),
               xlabel="batch size", ylabel="accuracy", title="final accuracy by batch size", logx=True)
    table = markdown_table(["batch size", *FIT_COLUMNS], rows)
    print(table)
    study.write_summary(f"# Batch size on {args.dataset}\n\n`{args.model}`, {args.optimizer} lr {args.lr}, "
                        f"{args.epochs} epochs, {args.seeds} seed(s) (mean ± std).\n\n{table}\n\n"
                        "![curves](curves.png)\n\n![epoch time](epoch_seconds.png) ![accuracy](accuracy.png)\n")


if __name__ == "__main__":
    experiment.main(run)
