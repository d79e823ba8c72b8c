"""Pretrain, replace the head, fine-tune on a few images (report 001: a CIFAR-10 network
fine-tuned on 640 Terrassa images, 77.5 %), offline.

``cifar_cnn`` is pretrained on every training image of the dataset's first classes (below
--split), then its last layer is replaced by a fresh one for the other classes and the
network fine-tuned (--trainable layers) on the first --train-per-class training images of
each of them, against the same network trained from scratch on those same images.  Both
are scored on every test image of the held-out classes.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from jaxcv import experiment
from jaxcv.data.smallsets import per_class, select_classes
from jaxcv.errors import UsageError
from jaxcv.models import get_model
from jaxcv.train import make_optimizer
from jaxcv.train.freeze import TRAINABLE_HELP, head_layers, layer_order, select_layers
from jaxcv.transfer import warm_start
from jaxcv.viz import FIT_COLUMNS, fit_row, markdown_table, plot_runs

STUDY = "finetune_small"
MODEL = "cifar_cnn"


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="shapes/cifar", epochs=30, batch_size=32, seeds=3,
                          optimizer="adam", lr=1e-3, train_per_class=20)
    p.add_argument("--split", type=experiment.positive_int, default=None,
                   help="classes below it pretrain, the others are the new task (default: half the classes)")
    p.add_argument("--trainable", default="all", help=f"layers fine-tuned: {TRAINABLE_HELP}")
    p.add_argument("--pretrain-lr", type=experiment.positive_float, default=1e-3, help="learning rate of pretraining")
    p.add_control("--pretrain-epochs", type=experiment.positive_int, default=10, help="epochs of pretraining")
    p.add_control("--pretrain-batch-size", type=experiment.positive_int, default=128, help="batch of pretraining")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data(small=False)
    split = num_classes // 2 if args.split is None else args.split
    if not 2 <= split <= num_classes - 2:
        raise UsageError(f"--split {split}: both sides need two classes or more ({args.dataset} has {num_classes})")
    old, new = range(split), range(split, num_classes)
    source = get_model(MODEL, num_classes=len(old))
    target = source.clone(num_classes=len(new))
    sample = jax.ShapeDtypeStruct((1, *train["image"].shape[1:]), jnp.float32)
    layers = layer_order(target, sample)
    # the fine-tuning's options are checked before the pretraining's epochs, not after them
    select_layers(layers, args.trainable, head_layers(target, layers))
    small, held_out = per_class(select_classes(train, new), args.train_per_class), select_classes(test, new)
    if len(small["label"]) < args.batch_size:
        raise UsageError(f"--train-per-class {args.train_per_class} of {len(new)} classes is {len(small['label'])} "
                         f"fine-tuning images, no batch of {args.batch_size}; lower --batch-size")

    pretrain_set = select_classes(train, old)
    pretrain = study.run("pretrained", source, pretrain_set, select_classes(test, old),
                         optimizer=make_optimizer(args.optimizer, args.pretrain_lr), epochs=args.pretrain_epochs,
                         batch_size=args.pretrain_batch_size)
    optimizer = make_optimizer(args.optimizer, args.lr)
    start = warm_start(lambda seed: pretrain[seed].state.variables(), sample, trainable=args.trainable,
                       fresh=head_layers(target, layers))
    results = {"finetuned": study.run("finetuned", target, small, held_out, optimizer=optimizer, warm_start=start),
               "scratch": study.run("scratch", target, small, held_out, optimizer=optimizer)}

    plot_runs(results, study.figure("curves"),
              title=f"{MODEL} on {args.train_per_class} images per class of {len(new)} new classes")
    rows = [(name, layers, *fit_row(rs)) for name, layers, rs in (
        ("pretrained", f"all, classes 0-{split - 1}", pretrain),
        ("finetuned", f"{args.trainable}, after pretraining", results["finetuned"]),
        ("scratch", "all, from random weights", results["scratch"]))]
    table = markdown_table(["variant", "trained layers", *FIT_COLUMNS], rows)
    print(table)
    study.write_summary(
        f"# Fine-tuning a pretrained {MODEL} on a small set of new classes ({args.dataset})\n\n"
        f"Pretrained on classes 0-{split - 1} ({len(pretrain_set['label'])} images, {args.pretrain_epochs} epochs, "
        f"lr {args.pretrain_lr}); "
        f"fine-tuned and trained from scratch on {len(small['label'])} images of classes {split}-{num_classes - 1} "
        f"({args.train_per_class} per class), {args.epochs} epochs, {args.optimizer} lr {args.lr}, batch "
        f"{args.batch_size}; val is every test image of those classes ({len(held_out['label'])}); "
        f"{args.seeds} seed(s) (mean ± std).\n\n{table}\n\n![curves](curves.png)\n")


if __name__ == "__main__":
    experiment.main(run)
