"""DenseNet121 cut down block by block (report 002: 7 M parameters keep 94 %, 5 M ...,
removing three blocks 52 %), on the full training set and on a small one.

Each variant keeps the first --blocks dense blocks (cut at the transition after the last
kept one), with a new head: the classes alone, or a hidden dense layer first (--tops).
It loads --weights (Keras' ImageNet DenseNet121 file, or 'none' to train from random
weights) into the layers it keeps and trains every layer, on the whole training split and
on its first --train-per-class images per class.  The table puts each variant's parameters
beside the report's, with its test accuracy and seconds per epoch.  --image-size sets the
input (the default, the dataset's own, suits a CPU; 224 on a GPU).
"""

from __future__ import annotations

import argparse
from typing import Sequence

import jax
import jax.numpy as jnp

from jaxcv import experiment
from jaxcv.data.smallsets import per_class
from jaxcv.errors import UsageError
from jaxcv.models import count_params, get_model
from jaxcv.train import make_optimizer
from jaxcv.transfer import pretrained, warm_start
from jaxcv.viz import fit_row, markdown_table, plot_lines

STUDY = "prune_densenet"
REPORT_PARAMS = {4: "7 M", 3: "5 M", 2: "1.5 M", 1: "380 k"}
"""Report 002's parameter counts of DenseNet121 with 4, 3, 2 and 1 dense blocks (8 classes)."""


def int_list(text: str) -> tuple[int, ...]:
    """Comma-separated non-negative integers."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="shapes/cifar", epochs=10, batch_size=32, seeds=1,
                          optimizer="adam", lr=1e-4, train_per_class=50)
    p.add_argument("--weights", default="imagenet", help="Keras DenseNet121 weights: a file, 'imagenet' or 'none'")
    p.add_argument("--blocks", type=int_list, default=(4, 3, 2, 1), help="dense blocks kept, one variant each")
    p.add_argument("--tops", type=int_list, default=(0, 1024), help="hidden dense width of the head (0: none)")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    if bad := [b for b in args.blocks if not 1 <= b <= 4]:
        raise UsageError(f"--blocks: DenseNet121 has dense blocks 1 to 4, not {bad[0]}")
    full, test, num_classes = study.load_data(small=False)
    sets = {"full": full, f"{args.train_per_class}_per_class": per_class(full, args.train_per_class)}
    sample = jax.ShapeDtypeStruct((1, *full["image"].shape[1:]), jnp.float32)
    optimizer = make_optimizer(args.optimizer, args.lr)

    rows, series = [], {name: ([], []) for name in sets}
    for blocks in args.blocks:
        for width in args.tops:
            model = get_model("densenet121", num_classes=num_classes, blocks=blocks, top=(width,) if width else ())
            variant = f"blocks{blocks}" + (f"_fc{width}" if width else "")
            start = None
            if args.weights != "none":
                body, _ = pretrained(model, args.weights, sample, skip=model.head_layers(), strict=False)
                start = warm_start(body, sample, fresh=model.head_layers())
            shapes = jax.eval_shape(lambda x, m=model: m.init(jax.random.key(0), x), sample)
            params = count_params(shapes)
            for name, train in sets.items():
                results = study.run(f"{variant}/{name}", model, train, test, optimizer=optimizer, warm_start=start)
                final, best, _, seconds, _ = fit_row(results)
                rows.append((variant, name, f"{params:,}", REPORT_PARAMS[blocks], final, best, seconds))
                series[name][0].append(params)
                series[name][1].append(sum(r.history[-1]["val_accuracy"] for r in results) / len(results))

    plot_lines(series, study.figure("params_accuracy"), xlabel="parameters and BatchNorm statistics",
               ylabel="final test accuracy", title=f"DenseNet121 cut down, on {args.dataset}", logx=True)
    table = markdown_table(["variant", "training set", "params (+ BN stats)", "report's (8 classes)",
                            "final test acc", "best test acc", "s / epoch / model"], rows)
    print(table)
    source = "random weights" if args.weights == "none" else f"weights `{args.weights}`"
    study.write_summary(
        f"# DenseNet121 with dense blocks removed, on {args.dataset}\n\n"
        f"From {source}; every layer trained {args.epochs} epochs, {args.optimizer} lr {args.lr}, batch "
        f"{args.batch_size}, {sample.shape[1]} px; full set {len(full['label'])} images, small set "
        f"{args.train_per_class} per class; {len(test['label'])} test images; {num_classes} classes; "
        f"{args.seeds} seed(s) (mean ± std). Parameter counts include BatchNorm statistics (Keras' count) "
        f"and this dataset's head.\n\n{table}\n\n![params vs accuracy](params_accuracy.png)\n")


if __name__ == "__main__":
    experiment.main(run)
