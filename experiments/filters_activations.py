"""Filters and activations, first vs last epoch (reports 000 Task 3 and 003 §3.5-3.7).

A conv layer's filters (default: the first) after the first and after the last saved epoch (or --epoch),
side by side on one scale with how far each filter moved (a deeper layer's as a mosaic per input
channel); for a colour model, the filters in colour and one input channel at a time; the layer's
feature maps for one test image at both epochs, and the first against the last conv layer's;
per-layer weight histograms at both epochs and of the change between them.  mnist_cnn on MNIST
(report 000); cifar_cnn with a colour --dataset such as cifar10 (report 003).  --from inspects a
run an earlier study trained (its first and last saved epochs); without it, the model is trained
here first.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxcv import experiment, inspection, runs
from jaxcv.errors import UsageError
from jaxcv.viz import markdown_table
from jaxcv.viz.inspection import plot_filter_change, plot_histograms, plot_mosaics

STUDY = "filters_activations"


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="mnist", epochs=3, batch_size=128, seeds=1, optimizer="adam",
                          lr=1e-3)
    runs.add_source_options(p)
    p.add_control("--layer", default=None, help="conv layer to show (default: the model's first)")
    p.add_control("--image", type=int, default=0, help="index of the test image whose activations are shown")
    study = experiment.Study(STUDY, p, argv)
    args = study.args

    def check(model, test):
        if not 0 <= args.image < len(test["image"]):
            raise UsageError(f"--image {args.image} is not one of the {len(test['image'])} test images")
        inspection.check_layers(model, test["image"], conv_layer=args.layer)

    dataset, _, test, model, last = runs.inspected_run(study, check)
    first = runs.load_run(last.run_dir, last.variant, last.seed, last.epochs[0])
    convs = inspection.conv_layers(last.variables)
    layer = args.layer or convs[0]
    epochs = {f"epoch {first.epoch}": first.variables, f"epoch {last.epoch}": last.variables}
    where = f"{type(model).__name__} on {dataset}"

    kernel_channels = inspection.conv_kernel(last.variables, layer).shape[2]
    per_channel = kernel_channels not in (1, 3)  # a deeper layer's filters are neither grey nor RGB images
    change = inspection.filter_change(first.variables, last.variables, layer, per_channel=per_channel)
    before, after = change.before, change.after
    if per_channel:  # one mosaic of the layer's filters per input channel, the mosaics tiled apart
        before, after = inspection.tile(before, pad=3), inspection.tile(after, pad=3)
    cells = f", one cell per input channel ({kernel_channels})" if per_channel else ""
    plot_filter_change(before, after, change.distance, study.figure(f"filters_{layer}"),
                       labels=(f"epoch {first.epoch}", f"epoch {last.epoch}"),  # both, if the same epoch
                       title=f"{where}: {layer} filters{cells} (one scale: mid-grey is 0)")
    figures = [f"filters_{layer}"]
    if kernel_channels == 3:
        channels = inspection.filter_grid(last.variables, layer, per_channel=True)
        plot_mosaics({"RGB": inspection.filter_grid(last.variables, layer),
                      **{name: c for name, c in zip(("red", "green", "blue"), channels)}},
                     study.figure(f"filters_{layer}_channels"), title=f"{where}: {layer} filters, epoch {last.epoch}")
        figures.append(f"filters_{layer}_channels")

    image = test["image"][args.image: args.image + 1]
    shown = {"image": np.asarray(image[0], np.float32) / 255}
    maps = {name: inspection.activation_grid(inspection.activations(model, v, image, layer))[0]
            for name, v in epochs.items()}
    plot_mosaics({**shown, **maps}, study.figure(f"activations_{layer}"),
                 title=f"{where}: {layer} feature maps of test image {args.image} (label {test['label'][args.image]})")
    depth = {name: inspection.activation_grid(inspection.activations(model, last.variables, image, name))[0]
             for name in dict.fromkeys((convs[0], convs[-1]))}
    plot_mosaics({**shown, **depth}, study.figure("activations_first_last_conv"),
                 title=f"{where}: first and last conv layer's feature maps, epoch {last.epoch}")
    figures += [f"activations_{layer}", "activations_first_last_conv"]

    plot_histograms({name: inspection.weight_histograms(v) for name, v in epochs.items()}, study.figure("weights"),
                    title=f"{where}: weights per layer")
    plot_histograms({f"epoch {last.epoch} − epoch {first.epoch}": inspection.change_histograms(first.variables,
                                                                                               last.variables)},
                    study.figure("weight_change"), xlabel="change", log=True, title=f"{where}: how the weights moved")
    figures += ["weights", "weight_change"]

    relative = {path: float(v) for path, v in inspection.relative_change(first.variables, last.variables).items()}
    distance = np.asarray(change.distance)
    results = {"model": type(model).__name__, "run": str(last.run_dir), "variant": last.variant, "seed": last.seed,
               "first_epoch": first.epoch, "last_epoch": last.epoch, "layer": layer, "image": args.image,
               "filter_distance": distance.tolist(), "filter_relative_change": np.asarray(change.relative).tolist(),
               "relative_change": relative, "figures": [f"{f}.png" for f in figures]}
    study.write_results("results", results)
    moved = f"‖epoch {last.epoch} − epoch {first.epoch}‖ / ‖epoch {first.epoch}‖"
    table = markdown_table(["parameters", moved],
                           [(path, f"{r:.4f}") for path, r in relative.items()])
    print(table)
    same = "" if first.epoch < last.epoch else "\n\nOnly one epoch is saved, so both columns show the same weights.\n"
    study.write_summary(
        f"# Filters and activations of {type(model).__name__} on {dataset}\n\nVariant `{last.variant}` seed "
        f"{last.seed} of `{last.run_dir}`, epochs {first.epoch} and {last.epoch} (the first and last saved). "
        f"{layer}'s {len(distance)} filters moved {distance.mean():.3f} on average (largest "
        f"{distance.max():.3f}, median relative change {np.median(np.asarray(change.relative)):.3f}).{same}\n\n"
        f"## How far each parameter array moved\n\n{table}\n\n"
        + "\n\n".join(f"![{f}]({f}.png)" for f in figures) + "\n")


if __name__ == "__main__":
    experiment.main(run)
