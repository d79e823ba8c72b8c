"""LeNet and two BatchNorm/dropout nets on CIFAR-10 (report 003), with its Tables 1–3.

The LeNet-style net (5x5 convs 32/64/128 with pooling, dense 64, dense 10) trains with SGD;
Models 1 and 2 of the report's Table 2 (BatchNorm, Dropout2d 0.1, Xavier init) with Adam 1e-3;
batch 64, 10 epochs.  The last --val-fraction of the training split is held out for
validation, and the test split is scored once at the end, as the report gave train,
validation and test numbers.  The report counted LeNet's parameters as 390,400; jaxcv counts
them layer by layer and shows where the two differ.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from jaxcv import experiment
from jaxcv.models import count_params, get_model, param_table
from jaxcv.train import Arrays, FitResult, evaluate_arrays, make_optimizer
from jaxcv.viz import markdown_table, mean_std, param_table_markdown, plot_runs

STUDY = "lenet_cifar"
REPORT_LENET_PARAMS = {"conv1": 2432, "conv2": 51264, "conv3": 204928, "fc1": 131136, "fc2": 640}  # its eq. 1-5


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}")
    return value


def final_metrics(results: list[FitResult], train: Arrays, test: Arrays) -> dict[str, str]:
    """Final loss and accuracy on the training images (inference mode), validation and test,
    over the seeds that did not fail."""
    ok = [r for r in results if not r.failed]
    if not ok:
        return {f"{split} {metric}": "failed" for split in ("train", "val", "test") for metric in ("loss", "accuracy")}
    failed = f" ({len(results) - len(ok)} of {len(results)} seeds failed)" if len(ok) < len(results) else ""
    scores = {"train": [evaluate_arrays(r.state, train) for r in ok],
              "val": [{"loss": r.history[-1]["val_loss"], "accuracy": r.history[-1]["val_accuracy"]} for r in ok],
              "test": [evaluate_arrays(r.state, test) for r in ok]}
    return {f"{split} {metric}": mean_std([s[metric] for s in split_scores], ".4f") + failed
            for split, split_scores in scores.items() for metric in ("loss", "accuracy")}


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="cifar10", epochs=10, batch_size=64, seeds=3, lr=1e-3)
    p.add_argument("--val-fraction", type=fraction, default=0.1, help="training split held out")
    p.add_argument("--lenet-lr", type=experiment.positive_float, default=0.05,
                   help="LeNet's SGD learning rate (the report does not give it); --lr is Models 1 and 2's Adam's")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    data, test, num_classes = study.load_data()
    cut = len(data["label"]) - max(1, int(len(data["label"]) * args.val_fraction))
    train, val = {k: v[:cut] for k, v in data.items()}, {k: v[cut:] for k, v in data.items()}
    seen = {k: v[:10_000] for k, v in train.items()}

    optimizers = {"lenet": make_optimizer("sgd", args.lenet_lr), "lenet_model1": make_optimizer("adam", args.lr),
                  "lenet_model2": make_optimizer("adam", args.lr)}
    results = {name: study.run(name, get_model(name, num_classes=num_classes), train, val, optimizer=optimizer)
               for name, optimizer in optimizers.items()}
    plot_runs(results, study.figure("curves"), title=f"report 003's nets on {args.dataset}")
    finals = {name: final_metrics(rs, seen, test) for name, rs in results.items()}

    lenet = param_table(results["lenet"][0].state.params)
    total, report_total = sum(r.params for r in lenet), sum(REPORT_LENET_PARAMS.values())
    counts = markdown_table(["layer", "jaxcv", "report 003", "difference"], [
        (r.layer, f"{r.params:,}", f"{REPORT_LENET_PARAMS[r.layer]:,}", f"{r.params - REPORT_LENET_PARAMS[r.layer]:+,}")
        for r in lenet] + [("total", f"{total:,}", f"{report_total:,}", f"{total - report_total:+,}")])
    table1 = markdown_table(["training accuracy", "validation accuracy", "test accuracy"],
                            [[finals["lenet"][f"{s} accuracy"] for s in ("train", "val", "test")]])
    table2 = "\n\n".join(f"**{name}** ({count_params(results[name][0].state.params):,} parameters)\n\n"
                         + param_table_markdown(param_table(results[name][0].state.params))
                         for name in ("lenet_model1", "lenet_model2"))
    table3 = markdown_table(["", "Model 1", "Model 2"], [
        [f"final {key}", finals["lenet_model1"][key], finals["lenet_model2"][key]] for key in finals["lenet"]])
    print(table1, table3, sep="\n\n")
    study.write_summary(
        f"# Report 003's nets on {args.dataset}\n\nBatch {args.batch_size}, {args.epochs} epochs, {args.seeds} "
        f"seed(s) (mean ± std); validation is the last {len(val['label']):,} of the training split's "
        f"{len(data['label']):,} images (--val-fraction {args.val_fraction:g}); "
        f"training numbers score the final model in inference mode on {len(seen['label']):,} training "
        f"images.\n\n## LeNet's parameters (the report's section 1.3)\n\nThe report's line (5) leaves out the "
        f"output layer's 10 biases.\n\n{counts}\n\n## Table 1: LeNet, SGD lr {args.lenet_lr}\n\n{table1}\n\n"
        f"## Table 2: Models 1 and 2\n\n{table2}\n\n## Table 3: Adam lr {args.lr}\n\n{table3}\n\n"
        "![curves](curves.png)\n")


if __name__ == "__main__":
    experiment.main(run)
