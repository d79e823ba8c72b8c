"""Activation maximisation (report 001, Task 3): the images that maximise VGG16's conv5_1 filters,
or a trained jaxcv classifier's class logits (--from RUN_DIR).

--preset keras is Keras' conv_filter_visualization.py (2016-17): 20 steps of normalised gradient
ascent (step 1 on the 0-255 input) from grey noise at 128 px, nothing clipped; the default
--preset long takes 200 steps of 4 grey levels with a 1 px jitter, the image clipped to the
valid range after each (--iterations, --step, --jitter, --blur override a preset).  All the units are optimised in
one compiled call, VGG16's filters by default before their ReLU: a filter that is zero on the
grey start has no gradient after the ReLU (Keras' run left those black and dropped them); --relu
optimises after it, as Keras did.  The best --show images are drawn in a grid, each standardised
for display as Keras did.

Each image's achieved activation (after the ReLU) is compared with its unit's mean over natural
images: the sample photographs at the same size for VGG16; for a classifier, the class's logit
over the test images of that class.  The reference is floored at the mean over all the layer's
units (classes), so a unit silent on natural images must beat what a typical one does there.

With --from, the classifier (--model, default by dataset; --variant, --run-seed, --epoch pick
the run) has one image per class at its input size and channels, in its own input range [0, 1]
(always clipped to it), drawn as it is; the figure names the class each image is predicted as.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, NamedTuple, Sequence

import jax
import numpy as np

from jaxcv import data as jdata
from jaxcv import experiment, runs
from jaxcv.errors import UsageError
from jaxcv.models import get_model
from jaxcv.synthesis import Network, Settings, optimise
from jaxcv.synthesis.filters import (PRESETS, best_units, channel_means, display, filter_objective, grey_noise,
                                     ratio_to_natural)
from jaxcv.synthesis.samples import PHOTOGRAPHS, load_image
from jaxcv.synthesis.study import add_weights_option, network_for, open_study
from jaxcv.train.losses import to_float
from jaxcv.viz import image_grid, markdown_table

STUDY = "activation_maximization"
BAR = 10.0  # the bar: each image drives its unit to >= 10x the unit's mean over natural images
VGG_ONLY = ("layer", "units", "size", "relu")  # options that name VGG16's units, not a classifier's


def ratio_text(ratio: float) -> str:
    return "-" if np.isnan(ratio) else f"{ratio:.1f}"


class Target(NamedTuple):
    """What is optimised: the network, the layer scored (and the one optimised), the units, the
    start images, the settings, and each unit's mean over natural images and its highest on any
    one natural image (every unit of the layer)."""

    network: Network
    source: str
    layer: str
    objective_layer: str
    units: np.ndarray
    start: jax.Array
    settings: Settings
    natural: np.ndarray
    best: np.ndarray
    natural_text: str
    classifier: bool


def ascent_settings(args: argparse.Namespace, clip: bool | None = None) -> Settings:
    """The ``--preset``, with the options given overriding it (and ``clip`` if not ``None``)."""
    preset = PRESETS[args.preset]
    chosen = {name: getattr(args, name) for name in ("iterations", "step", "jitter", "blur")
              if getattr(args, name) is not None}
    return dataclasses.replace(preset, **chosen, **({} if clip is None else {"clip": clip})).settings()


def vgg_target(args: argparse.Namespace, network: Network | None) -> Target:
    net, source = network_for(args, network)
    layer = args.layer if args.relu else f"{args.layer}_pre_relu"
    units = np.arange(args.units)
    filter_objective(layer).check_units(units, net.check((args.layer, layer), (args.size, args.size, 3)))
    photos = np.stack([load_image(name, shape=(args.size, args.size)) for name in PHOTOGRAPHS])
    natural = channel_means(net, args.layer, photos, args.batch_size)
    return Target(net, source, args.layer, layer, units, grey_noise(jax.random.key(args.seed), args.units, args.size),
                  ascent_settings(args), natural.mean(0), natural.max(0),
                  f"the filter's mean over the {len(PHOTOGRAPHS)} sample photographs ({', '.join(PHOTOGRAPHS)}) "
                  f"at the same size", classifier=False)


def classifier_target(args: argparse.Namespace, parser: experiment.StudyParser) -> Target:
    if changed := [f"--{name}" for name in VGG_ONLY if getattr(args, name) != parser.get_default(name)]:
        raise UsageError(f"{', '.join(changed)} name(s) VGG16's filters; with --from the units are the classifier's "
                         "class logits at its own input size: leave them out")
    dataset = runs.run_config(args.source).get("dataset")
    test = {k: v[: args.test_size] for k, v in jdata.load_split(dataset, "test", args.data_dir).items()}
    classes = jdata.num_classes(dataset, args.data_dir)
    name = args.model or runs.default_model(dataset, test["image"].shape)
    model = get_model(name, num_classes=classes)
    restored = runs.restore_source(args, model, test["image"][:1])
    net = Network(model, restored.variables)
    logits = channel_means(net, "outputs", to_float(test["image"]), args.batch_size)
    own = np.array([logits[test["label"] == c, c].mean() if (test["label"] == c).any() else np.nan
                    for c in range(classes)])
    if np.isnan(own).any():
        raise UsageError(f"--test-size {args.test_size}: class(es) {np.flatnonzero(np.isnan(own)).tolist()} have no "
                         "test image; use more test images")
    height, width, channels = test["image"].shape[1:]
    return Target(net, f"{name} of `{restored.run_dir}` (variant `{restored.variant}`, seed {restored.seed}, "
                       f"epoch {restored.epoch}) on {dataset}", "outputs", "outputs", np.arange(classes),
                  grey_noise(jax.random.key(args.seed), classes, (height, width), channels),
                  ascent_settings(args, clip=True), own, logits.max(0),
                  f"the class's mean logit over the images of that class among the first {len(test['label']):,} test "
                  "images",
                  classifier=True)


def run(argv: Sequence[str] | None = None, network: Network | None = None) -> None:
    """The study from ``argv``; ``network`` replaces VGG16 from ``--weights`` (tests)."""
    p = experiment.base_parser(STUDY, __doc__)
    add_weights_option(p)
    runs.add_source_options(p, seed_option="--run-seed", trains=False)
    p.add_argument("--layer", default="conv5_1", help="the VGG16 layer whose filters are maximised")
    p.add_argument("--units", type=experiment.positive_int, default=200, help="maximise the first N filters")
    p.add_argument("--size", type=experiment.positive_int, default=128, help="image side, px")
    p.add_argument("--relu", action="store_true", help="maximise VGG16's activation after the ReLU (Keras)")
    p.add_argument("--preset", choices=PRESETS, default="long", help="the ascent's settings: "
                   + "; ".join(f"{name}: {preset}" for name, preset in PRESETS.items()))
    p.add_argument("--iterations", type=experiment.positive_int, default=None, help="gradient-ascent steps")
    p.add_argument("--step", type=experiment.positive_float, default=None,
                   help="step in grey levels (0-255) per iteration, over the gradient's RMS")
    p.add_argument("--jitter", type=int, default=None, help="random shift of up to N px each step")
    p.add_argument("--blur", type=float, default=None, help="Gaussian blur of this sigma (px) after each step")
    p.add_argument("--seed", type=int, default=0, help="seed of the grey noise and the jitter")
    p.add_control("--data-dir", type=experiment.folder, default=None,
                  help="with --from: the folder of prepared datasets (or the dataset's original files)")
    p.add_control("--test-size", type=experiment.positive_int, default=None,
                  help="with --from: the first N test images give each class's natural mean (default: all)")
    p.add_control("--show", type=experiment.positive_int, default=64, help="the best N images in the grid")
    p.add_control("--batch-size", type=experiment.positive_int, default=16,
                  help="images vmapped together inside the one call (memory grows with it)")

    def prepare(args: argparse.Namespace) -> Target:
        return classifier_target(args, p) if args.source is not None else vgg_target(args, network)

    study, target = open_study(STUDY, p, argv, prepare)
    args = study.args
    units, n = target.units, len(target.units)
    result = optimise(target.network, filter_objective(target.objective_layer), target.start, target.settings,
                      units=units, key=jax.random.key(args.seed + 1), batch_size=args.batch_size,
                      progress=None if args.no_progress else f"{n} units of {target.objective_layer}")
    start = channel_means(target.network, target.layer, result.at(0), args.batch_size)[units, units]
    final = channel_means(target.network, target.layer, result.final, args.batch_size)
    achieved = final[units, units]
    ratio = ratio_to_natural(achieved, target.natural, units)
    reached = np.nan_to_num(ratio) >= BAR
    numbers: dict[str, Any] = {
        "layer": target.layer, "objective": target.objective_layer, "units": units.tolist(), "start": start.tolist(),
        "achieved": achieved.tolist(), "natural_mean": target.natural[units].tolist(),
        "natural_best": target.best[units].tolist(),
        "natural_mean_over_units": float(target.natural.mean()), "ratio": [None if np.isnan(r) else float(r) for r in ratio],
        "reached_bar": reached.tolist(), "objective_value": result.terms["activation"].tolist(),
        "iterations": list(result.iterations)}
    settings = target.settings
    ascent = (f"{settings.iterations} steps of normalised gradient ascent ({settings.optimiser.step * 255:g} grey "
              f"levels each, jitter {settings.jitter.shift} px, blur {settings.blur:g}, "
              f"{'clipped to [0, 1]' if settings.clip else 'not clipped'}; preset `{args.preset}`) from grey noise")
    if target.classifier:
        predicted = final.argmax(-1)
        numbers["predicted"] = predicted.tolist()
        image_grid(list(result.final), study.figure("classes"),
                   titles=[f"{c}: {achieved[c]:.1f} (×{ratio_text(ratio[c])}) → {predicted[c]}" for c in units],
                   title="class: its logit (× its mean on test images of the class) → predicted class",
                   cell_inches=1.6)
        rows = [[c, f"{start[c]:.3g}", f"{achieved[c]:.3g}", f"{target.natural[c]:.3g}", ratio_text(ratio[c]),
                 f"{target.best[c]:.3g}", predicted[c]] for c in units]
        detail = markdown_table(["class", "logit at start", "achieved", "mean on its test images", "ratio",
                                 "highest on any test image", "predicted as"], rows)
        headline = markdown_table(["classes", "predicted as their class", f"≥ {BAR:g}× their mean", "median ratio",
                                   "above every test image's"],
                                  [[n, f"{int((predicted == units).sum())} / {n}", f"{int(reached.sum())} / {n}",
                                    ratio_text(float(np.nanmedian(ratio))),
                                    f"{int((achieved > target.best[units]).sum())} / {n}"]])
        title, figure = f"class logits of {type(target.network.model).__name__}", "classes"
        ascent = f"one image per class at {'×'.join(map(str, target.start.shape[1:]))}, {ascent}"
    else:
        shown = best_units(result, args.show)
        numbers["shown"] = shown.tolist()
        image_grid([display(result.final[i]) for i in shown], study.figure("filters"),
                   titles=[f"{i}: {achieved[i]:.0f} (×{ratio_text(ratio[i])})" for i in shown],
                   title=f"{target.objective_layer}: the best {len(shown)} of {n} filters (activation after ReLU, "
                         "× its mean over photographs)", cell_inches=1.4)
        worst = np.argsort(np.nan_to_num(ratio, nan=-1.0), kind="stable")[:5]
        detail = "The five lowest ratios:\n\n" + markdown_table(
            ["filter", "start", "achieved", "photographs' mean", "ratio", "highest on one photograph"],
            [[i, f"{start[i]:.3g}", f"{achieved[i]:.3g}", f"{target.natural[i]:.3g}", ratio_text(ratio[i]),
              f"{target.best[i]:.3g}"] for i in worst])
        headline = markdown_table(
            ["filters", f"≥ {BAR:g}× photographs", "silent on photographs", "dead after ascent", "median ratio",
             "start → achieved (median)", "above every photograph's"],
            [[n, f"{int(reached.sum())} / {n}", int((target.natural[units] == 0).sum()), int((achieved == 0).sum()),
              ratio_text(float(np.nanmedian(ratio))), f"{np.median(start):.3g} → {np.median(achieved):.3g}",
              f"{int((achieved > target.best[units]).sum())} / {n}"]])
        title, figure = f"{target.layer} filters", "filters"
        ascent = (f"filters 0–{n - 1} of {target.layer}, each maximised {'after' if args.relu else 'before'} its "
                  f"ReLU by {ascent} at {args.size}×{args.size}")
    study.write_results("activations", numbers)
    print(headline)
    study.write_summary(
        f"# Activation maximisation: {title}\n\n{target.source}; {ascent}, all in one call.  Activation: the "
        f"unit's mean over space after the ReLU (a class's logit); ratio: the optimised image's over "
        f"{target.natural_text}, that mean floored at its mean over all {len(target.natural)} units of the layer "
        f"({target.natural.mean():.3g}; '-' where that is not > 0).\n\n{headline}\n\n{detail}\n\n"
        f"![{figure}]({figure}.png)\n")


if __name__ == "__main__":
    experiment.main(run)
