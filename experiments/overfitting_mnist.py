"""Overfitting on MNIST (reports 000, 001): the proposed CNN against itself without dropout,
and without dropout with a wider dense layer ("removing the dropout layers and increasing the
number of parameters of our FC layer").  Adadelta, batch 128, as report 000.

Writes the train/validation curves side by side, the generalisation gap (validation − train
loss) per epoch, and a table with the final gap measured exactly: the trained models scored in
inference mode on (up to 10,000) training images against the test set.  Report 001 saw the
effect on 450 training images: try --train-size 450.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxcv import experiment
from jaxcv.models import count_params, get_model
from jaxcv.train import evaluate_arrays, make_optimizer
from jaxcv.viz import FIT_COLUMNS, fit_row, markdown_table, mean_std, plot_lines, plot_runs

STUDY = "overfitting_mnist"


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="mnist", epochs=12, batch_size=128, seeds=3,
                          optimizer="adadelta", lr=1.0)
    p.add_argument("--model", choices=("mnist_cnn", "keras_mnist_cnn"), default="mnist_cnn",
                   help="report 000's CNN or report 001's Keras example")
    p.add_argument("--wide-fc", type=experiment.positive_int, default=512,
                   help="width of the dense layer of the no-dropout wide variant")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data()

    optimizer = make_optimizer(args.optimizer, args.lr)
    model = get_model(args.model, num_classes=num_classes)
    results = study.sweep(args.model, model, train, test, {"dropout_rate": [0.25, 0.0]}, optimizer=optimizer)
    wide = f"no_dropout_fc{args.wide_fc}"
    results[wide] = study.run(wide, model.clone(dropout_rate=0.0, dense_features=(args.wide_fc,)), train, test,
                              optimizer=optimizer)

    plot_runs(results, study.figure("curves"), title=f"{args.model} on {args.dataset}: dropout and a wider FC")
    gaps = {v: (range(1, len(rs[0].history) + 1),
                np.mean([[e["val_loss"] - e["train_loss"] for e in r.history] for r in rs], 0))
            for v, rs in results.items()}
    plot_lines(gaps, study.figure("gap"), xlabel="epoch", ylabel="validation − train loss",
               title="generalisation gap (mean over seeds)")

    seen = {k: v[:10_000] for k, v in train.items()}
    rows = []
    for variant, rs in results.items():
        train_acc = [evaluate_arrays(r.state, seen)["accuracy"] for r in rs]
        exact_gap = [a - r.history[-1]["val_accuracy"] for a, r in zip(train_acc, rs)]
        rows.append([variant, f"{count_params(rs[0].state.params):,}", *fit_row(rs), mean_std(train_acc), mean_std(exact_gap)])
    table = markdown_table(["variant", "params", *FIT_COLUMNS, "train acc (inference)", "exact gap"], rows)
    print(table)
    study.write_summary(
        f"# Overfitting on {args.dataset}\n\n`{args.model}`, {args.optimizer} lr {args.lr}, batch {args.batch_size}, "
        f"{args.epochs} epochs, {args.seeds} seed(s) (mean ± std). \"train − val acc\" uses the running "
        "training accuracy (dropout on); \"exact gap\" scores the final models in inference mode on "
        f"{len(seen['label']):,} training images.\n\n{table}\n\nFinal validation − train loss: "
        + ", ".join(f"{v} {g[-1]:+.3f}" for v, (_, g) in gaps.items())
        + "\n\n![curves](curves.png)\n\n![gap](gap.png)\n")


if __name__ == "__main__":
    experiment.main(run)
