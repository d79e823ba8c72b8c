"""The custom MNIST CNN of report 000: conv 32/32/16, dense 128, Adadelta, batch 128, 12 epochs.

Prints report 000's parameter table (263,418 parameters, about 1 MB) and writes the learning
curves and the final test accuracy.
"""

from __future__ import annotations

from typing import Sequence

from jaxcv import experiment
from jaxcv.models import get_model, param_table
from jaxcv.train import make_optimizer
from jaxcv.viz import markdown_table, over_seeds, param_table_markdown, plot_runs

STUDY = "mnist_baseline"


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="mnist", epochs=12, batch_size=128, seeds=1,
                          optimizer="adadelta", lr=1.0)
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data()

    results = study.run("mnist_cnn", get_model("mnist_cnn", num_classes=num_classes), train, test,
                        optimizer=make_optimizer(args.optimizer, args.lr))
    params = param_table_markdown(param_table(results[0].state.params))
    print(params)
    plot_runs({"mnist_cnn": results}, study.figure("curves"), title=f"mnist_cnn on {args.dataset}")
    accuracy = over_seeds(results, lambda r: r.history[-1]["val_accuracy"], ".4f")
    table = markdown_table(["model", "test accuracy", "s / epoch", "compile s"], [(
        "mnist_cnn", accuracy, f"{results[0].history[-1]['epoch_seconds']:.2f}",
        f"{results[0].compile_seconds:.1f}")])
    print(table)
    study.write_summary(f"# Report 000's MNIST CNN on {args.dataset}\n\n{args.optimizer} lr {args.lr}, batch "
                        f"{args.batch_size}, {args.epochs} epochs, {args.seeds} seed(s).\n\n## Parameters\n\n"
                        f"{params}\n\n## Result\n\n{table}\n\n![curves](curves.png)\n")


if __name__ == "__main__":
    experiment.main(run)
