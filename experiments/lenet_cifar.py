"""LeNet and two BatchNorm/dropout nets on CIFAR-10 (seed 003), with its Tables 1–3.

The LeNet-style net (5x5 convs 32/64/128 with pooling, dense 64, dense 10) trains with SGD;
Models 1 and 2 of the seed's Table 2 (BatchNorm, Dropout2d 0.1, Xavier init) with Adam 1e-3;
batch 64, 10 epochs.  The last --val-fraction of the training split is held out for
validation, and the test split is scored once at the end, as the seed reported train,
validation and test numbers.  The seed counted LeNet's parameters as 390,400; jaxcv counts
them layer by layer and shows where the two differ.
"""

from __future__ import annotations

from jaxcv import experiment
from jaxcv.data import Arrays
from jaxcv.models import count_params, get_model, param_table
from jaxcv.train import FitResult, evaluate_arrays, make_optimizer
from jaxcv.viz import markdown_table, mean_std, param_table_markdown, plot_runs

STUDY = "lenet_cifar"
SEED_LENET_PARAMS = {"conv1": 2432, "conv2": 51264, "conv3": 204928, "fc1": 131136, "fc2": 640}  # its eq. 1-5


def final_metrics(results: list[FitResult], train: Arrays, test: Arrays) -> dict[str, str]:
    """Final loss and accuracy on the training images (inference mode), validation and test."""
    scores = {"train": [evaluate_arrays(r.state, train) for r in results],
              "val": [{"loss": r.history[-1]["val_loss"], "accuracy": r.history[-1]["val_accuracy"]} for r in results],
              "test": [evaluate_arrays(r.state, test) for r in results]}
    return {f"{split} {metric}": mean_std([s[metric] for s in split_scores], ".4f")
            for split, split_scores in scores.items() for metric in ("loss", "accuracy")}


def run() -> None:
    p = experiment.parser(STUDY, __doc__, dataset="cifar10", epochs=10, batch_size=64, seeds=3)
    p.add_argument("--val-fraction", type=float, default=0.1, help="training split held out (default: 0.1)")
    p.add_argument("--lenet-lr", type=experiment.positive_float, default=0.05,
                   help="LeNet's SGD learning rate (the seed does not give it; default: 0.05)")
    p.add_argument("--lr", type=experiment.positive_float, default=1e-3, help="Models 1 and 2's Adam lr (default: 1e-3)")
    args = p.parse_args()
    if not 0 < args.val_fraction < 1:
        raise ValueError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
    study = experiment.Study(STUDY, args)
    data, test, num_classes = study.load_data()
    cut = len(data["label"]) - max(1, int(len(data["label"]) * args.val_fraction))
    train, val = {k: v[:cut] for k, v in data.items()}, {k: v[cut:] for k, v in data.items()}
    seen = {k: v[:10_000] for k, v in train.items()}

    models = {"lenet": make_optimizer("sgd", args.lenet_lr), "lenet_model1": make_optimizer("adam", args.lr),
              "lenet_model2": make_optimizer("adam", args.lr)}
    results = {name: study.run(name, lambda name=name: get_model(name, num_classes=num_classes), train, val,
                               optimizer=optimizer) for name, optimizer in models.items()}
    plot_runs({v: [r.history for r in rs] for v, rs in results.items()}, study.figure("curves"),
              title=f"seed 003's nets on {args.dataset}")
    finals = {name: final_metrics(rs, seen, test) for name, rs in results.items()}

    lenet = param_table(results["lenet"][0].state.params)
    counts = markdown_table(["layer", "jaxcv", "seed 003", "difference"], [
        (r.layer, f"{r.params:,}", f"{SEED_LENET_PARAMS[r.layer]:,}", f"{r.params - SEED_LENET_PARAMS[r.layer]:+,}")
        for r in lenet] + [("total", f"{sum(r.params for r in lenet):,}", f"{sum(SEED_LENET_PARAMS.values()):,}",
                            f"{sum(r.params for r in lenet) - sum(SEED_LENET_PARAMS.values()):+,}")])
    table1 = markdown_table(["training accuracy", "validation accuracy", "test accuracy"],
                            [[finals["lenet"][f"{s} accuracy"] for s in ("train", "val", "test")]])
    table2 = "\n\n".join(f"**{name}** ({count_params(results[name][0].state.params):,} parameters)\n\n"
                         + param_table_markdown(param_table(results[name][0].state.params))
                         for name in ("lenet_model1", "lenet_model2"))
    table3 = markdown_table(["", "Model 1", "Model 2"], [
        [f"final {key}", finals["lenet_model1"][key], finals["lenet_model2"][key]] for key in finals["lenet"]])
    study.write_summary(
        f"# Seed 003's nets on {args.dataset}\n\nBatch {args.batch_size}, {args.epochs} epochs, {args.seeds} "
        f"seed(s) (mean ± std); validation is the last {args.val_fraction:.0%} of the training split; "
        f"training numbers score the final model in inference mode on {len(seen['label']):,} training "
        f"images.\n\n## LeNet's parameters (the seed's section 1.3)\n\nThe seed's line (5) leaves out the "
        f"output layer's 10 biases.\n\n{counts}\n\n## Table 1: LeNet, SGD lr {args.lenet_lr}\n\n{table1}\n\n"
        f"## Table 2: Models 1 and 2\n\n{table2}\n\n## Table 3: Adam lr {args.lr}\n\n{table3}\n\n"
        "![curves](curves.png)\n")
    print(table1, table3, sep="\n\n")
    print(f"wrote {study.out}")


if __name__ == "__main__":
    experiment.main(run)
