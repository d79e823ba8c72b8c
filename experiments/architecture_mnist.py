"""Architecture on MNIST (report 001): Keras' mnist_cnn (conv 32, conv 32, pool, dense 128),
with one conv removed, with three more convs, and with a dense 1024 before the dense 128.

Writes a table of parameters (jaxcv's count beside the report's), seconds per epoch and test
accuracy, and the curves.  Report 001 timed these on a GTX 970: 18, 11, 39 and 28 s per epoch.
"""

from __future__ import annotations

from typing import Sequence

from jaxcv import experiment
from jaxcv.models import count_params, get_model
from jaxcv.train import make_optimizer
from jaxcv.viz import FIT_COLUMNS, fit_row, markdown_table, plot_runs

STUDY = "architecture_mnist"
VARIANTS = {  # name: (mnist_cnn fields, the report's parameter count, the report's seconds per epoch)
    "base": (dict(conv_features=(32, 32)), "600,810", 18),
    "minus_1_conv": (dict(conv_features=(32,)), "693,962", 11),
    "plus_3_conv": (dict(conv_features=(32,) * 5), "370,506", 39),
    "plus_fc1024": (dict(conv_features=(32, 32), dense_features=(1024, 128)), "4.9 M", 28),
}


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="mnist", epochs=12, batch_size=128, seeds=3,
                          optimizer="adadelta", lr=1.0)
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data()

    optimizer = make_optimizer(args.optimizer, args.lr)
    results = {name: study.run(name, get_model("mnist_cnn", num_classes=num_classes, **fields), train, test,
                               optimizer=optimizer)
               for name, (fields, _, _) in VARIANTS.items()}
    plot_runs(results, study.figure("curves"), title=f"mnist_cnn variants on {args.dataset}")
    rows = [[name, f"{count_params(rs[0].state.params):,}", VARIANTS[name][1], *fit_row(rs), VARIANTS[name][2]]
            for name, rs in results.items()]
    table = markdown_table(["variant", "params", "report's params", *FIT_COLUMNS,
                            "report's s / epoch (GTX 970)"], rows)
    print(table)
    study.write_summary(f"# Architecture on {args.dataset}\n\n{args.optimizer} lr {args.lr}, batch "
                        f"{args.batch_size}, {args.epochs} epochs, {args.seeds} seed(s) (mean ± std).\n\n"
                        f"{table}\n\n![curves](curves.png)\n")


if __name__ == "__main__":
    experiment.main(run)
