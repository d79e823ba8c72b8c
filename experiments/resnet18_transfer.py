"""Pretrained ResNet18 with only its last layers trainable (report 003: "only the last five
layers", Adam 5e-4, batch 64; it converged faster than their best CNN), against LeNet Model 1
trained on the same data: loss curves.

ResNet18's torchvision weights (--weights: a .safetensors or, with torch installed, .pth
state dict, or 'imagenet' for torchvision's file in its cache or $JAXCV_WEIGHTS) load into
every layer but the classifier, which is new; the --trainable layers train (frozen
BatchNorm layers keep their statistics), LeNet Model 1 trains whole from random weights.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from jaxcv import experiment
from jaxcv.models import count_params, get_model
from jaxcv.train import make_optimizer
from jaxcv.train.freeze import TRAINABLE_HELP, layer_order, select_layers
from jaxcv.transfer import pretrained, warm_start
from jaxcv.viz import FIT_COLUMNS, fit_row, markdown_table, plot_runs

STUDY = "resnet18_transfer"


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="shapes/cifar", epochs=10, batch_size=64, seeds=1,
                          optimizer="adam", lr=5e-4)
    p.add_argument("--weights", default="imagenet", help="pretrained ResNet18: a torchvision state dict file or 'imagenet'")
    p.add_argument("--trainable", default="last:5", help=f"ResNet18's trained layers: {TRAINABLE_HELP}")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data()
    resnet = get_model("resnet18", num_classes=num_classes)
    sample = jax.ShapeDtypeStruct((1, *train["image"].shape[1:]), jnp.float32)
    body, report = pretrained(resnet, args.weights, sample, skip=resnet.head_layers())
    layers = layer_order(resnet, sample)
    trained = select_layers(layers, args.trainable, resnet.head_layers())
    optimizer = make_optimizer(args.optimizer, args.lr)
    results = {
        "resnet18": study.run("resnet18", resnet, train, test, optimizer=optimizer,
                              warm_start=warm_start(body, sample, trainable=trained, fresh=resnet.head_layers())),
        "lenet_model1": study.run("lenet_model1", get_model("lenet_model1", num_classes=num_classes), train, test,
                                  optimizer=optimizer),
    }
    plot_runs(results, study.figure("curves"), title=f"pretrained ResNet18 ({args.trainable} trainable) and "
                                                     f"LeNet Model 1 on {args.dataset}")
    resnet_params = results["resnet18"][0].state.params
    lenet_params = results["lenet_model1"][0].state.params
    rows = [("resnet18", f"{args.trainable}: {', '.join(trained)}",
             f"{sum(count_params(resnet_params[k]) for k in trained):,} of {count_params(resnet_params):,}",
             *fit_row(results["resnet18"])),
            ("lenet_model1", "all (random weights)", f"{count_params(lenet_params):,}", *fit_row(results["lenet_model1"]))]
    table = markdown_table(["model", "trained layers", "trained params", *FIT_COLUMNS], rows)
    print(table)
    study.write_summary(
        f"# Pretrained ResNet18 ({args.trainable} trainable) against LeNet Model 1 on {args.dataset}\n\n"
        f"Weights: `{report.path.name}` ({len(report.loaded)} layers loaded, the classifier new). "
        f"{len(train['label'])} training images, {len(test['label'])} test images (val), {args.epochs} epochs, "
        f"{args.optimizer} lr {args.lr}, batch {args.batch_size}, {args.seeds} seed(s) (mean ± std).\n\n{table}\n\n"
        f"![curves](curves.png)\n")


if __name__ == "__main__":
    experiment.main(run)
