"""The custom MNIST CNN of seed 000: conv 32/32/16, dense 128, Adadelta, batch 128, 12 epochs.

Prints seed 000's parameter table (263,418 parameters, about 1 MB) and writes the learning
curves and the final test accuracy.
"""

from __future__ import annotations

from jaxcv import experiment
from jaxcv.models import get_model, param_table
from jaxcv.train import make_optimizer
from jaxcv.viz import markdown_table, mean_std, param_table_markdown, plot_runs

STUDY = "mnist_baseline"


def run() -> None:
    p = experiment.parser(STUDY, __doc__, dataset="mnist", epochs=12, batch_size=128, seeds=1)
    p.add_argument("--lr", type=experiment.positive_float, default=1.0, help="Adadelta learning rate (default: 1.0)")
    args = p.parse_args()
    study = experiment.Study(STUDY, args)
    train, test, num_classes = study.load_data()

    results = study.run("mnist_cnn", lambda: get_model("mnist_cnn", num_classes=num_classes), train, test,
                        optimizer=make_optimizer("adadelta", args.lr))
    params = param_table_markdown(param_table(results[0].state.params))
    print(params)
    plot_runs({"mnist_cnn": [r.history for r in results]}, study.figure("curves"),
              title=f"mnist_cnn on {args.dataset}")
    accuracy = mean_std([r.history[-1]["val_accuracy"] for r in results], ".4f")
    table = markdown_table(["model", "test accuracy", "s / epoch", "compile s"], [(
        "mnist_cnn", accuracy, f"{results[0].history[-1]['epoch_seconds']:.2f}",
        f"{results[0].compile_seconds:.1f}")])
    study.write_summary(f"# Seed 000's MNIST CNN on {args.dataset}\n\nAdadelta lr {args.lr}, batch "
                        f"{args.batch_size}, {args.epochs} epochs, {args.seeds} seed(s).\n\n## Parameters\n\n"
                        f"{params}\n\n## Result\n\n{table}\n\n![curves](curves.png)\n")
    print(table)
    print(f"wrote {study.out}")


if __name__ == "__main__":
    experiment.main(run)
