"""Activation maximisation (report 001, Task 3): the images that maximise VGG16's conv5_1 filters.

As Keras' conv_filter_visualization.py (2016-17): the first 200 filters of block5_conv1, 20
steps of normalised gradient ascent (step 1 on the 0-255 input) from grey noise at 128 px, the
best 64 shown in an 8x8 grid, each image standardised for display.  Here all the filters are
optimised in one compiled call, and by default on the filter's activation before its ReLU: a
filter that is zero on the grey start has no gradient after the ReLU (Keras' run left those
black and dropped them); --relu optimises after it, as Keras did.  Each image's achieved
activation (after the ReLU) is compared with the filter's mean activation over the sample
photographs at the same size.
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from jaxcv import experiment
from jaxcv.synthesis import Jitter, Network, Settings, optimise
from jaxcv.synthesis.filters import best_units, channel_means, display, filter_objective, grey_noise
from jaxcv.synthesis.optimisers import NormalisedGradient
from jaxcv.synthesis.samples import PHOTOGRAPHS, load_image
from jaxcv.synthesis.study import add_weights_option, network_for, open_study
from jaxcv.viz import image_grid, markdown_table

STUDY = "activation_maximization"
BAR = 10.0  # the bar: each image drives its unit to >= 10x the unit's mean over photographs


def ratio_text(ratio: float) -> str:
    return "∞" if np.isinf(ratio) else f"{ratio:.1f}"


def run(argv: Sequence[str] | None = None, network: Network | None = None) -> None:
    """The study from ``argv``; ``network`` replaces VGG16 from ``--weights`` (tests)."""
    p = experiment.base_parser(STUDY, __doc__)
    add_weights_option(p)
    p.add_argument("--layer", default="conv5_1", help="the layer whose filters are maximised")
    p.add_argument("--units", type=experiment.positive_int, default=200, help="maximise the first N filters")
    p.add_argument("--size", type=experiment.positive_int, default=128, help="image side, px")
    p.add_argument("--iterations", type=experiment.positive_int, default=20, help="gradient-ascent steps")
    p.add_argument("--step", type=experiment.positive_float, default=1.0,
                   help="step in grey levels (0-255) per iteration, over the gradient's RMS")
    p.add_argument("--jitter", type=int, default=0, help="random shift of up to N px each step")
    p.add_argument("--blur", type=float, default=0.0, help="Gaussian blur of this sigma (px) after each step")
    p.add_argument("--relu", action="store_true", help="maximise the activation after the ReLU (Keras)")
    p.add_argument("--seed", type=int, default=0, help="seed of the grey noise and the jitter")
    p.add_control("--show", type=experiment.positive_int, default=64, help="the best N images in the grid")
    p.add_control("--batch-size", type=experiment.positive_int, default=16,
                  help="images vmapped together inside the one call (memory grows with it)")


    def prepare(args):
        settings = Settings(args.iterations, NormalisedGradient(args.step / 255), jitter=Jitter(args.jitter),
                            blur=args.blur, clip=False)
        net, source = network_for(args, network)
        layer = args.layer if args.relu else f"{args.layer}_pre_relu"
        objective = filter_objective(layer)
        objective.check_units(np.arange(args.units), net.check((args.layer, layer), (args.size, args.size, 3)))
        return settings, net, source, layer, objective

    study, (settings, network, source, layer, objective) = open_study(STUDY, p, argv, prepare)
    args = study.args
    units = np.arange(args.units)
    result = optimise(network, objective, grey_noise(jax.random.key(args.seed), args.units, args.size),
                      settings, units=units, key=jax.random.key(args.seed + 1), batch_size=args.batch_size,
                      progress=None if args.no_progress else f"{args.units} units of {layer}")
    photos = np.stack([load_image(name, shape=(args.size, args.size)) for name in PHOTOGRAPHS])
    natural = channel_means(network, args.layer, photos, args.batch_size).mean(0)[units]
    start = channel_means(network, args.layer, result.at(0), args.batch_size)[units, units]
    achieved = channel_means(network, args.layer, result.final, args.batch_size)[units, units]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(natural > 0, achieved / natural, np.where(achieved > 0, np.inf, 0.0))

    shown = best_units(result, args.show)
    image_grid([display(result.final[i]) for i in shown], study.figure("filters"),
               titles=[f"{i}: {achieved[i]:.0f} (×{ratio_text(ratio[i])})" for i in shown],
               title=f"{layer}: the best {len(shown)} of {args.units} filters (activation after ReLU, "
                     "× its mean over photographs)", cell_inches=1.4)
    study.write_results("activations", {"layer": args.layer, "objective": layer, "units": units.tolist(),
                                      "start": start.tolist(), "achieved": achieved.tolist(),
                                      "natural_mean": natural.tolist(), "objective_value": result.terms["activation"].tolist(),
                                      "iterations": list(result.iterations), "shown": shown.tolist()})

    reached = int((ratio >= BAR).sum())
    finite = ratio[np.isfinite(ratio)]
    worst = np.argsort(ratio, kind="stable")[:5]
    table = markdown_table(
        ["filters", f"≥ {BAR:g}× photographs", "silent on photographs", "dead after ascent", "median ratio (finite)",
         "start → achieved (median)"],
        [[args.units, f"{reached} / {args.units}", int((natural == 0).sum()), int((achieved == 0).sum()),
          f"{np.median(finite):.1f}" if finite.size else "-", f"{np.median(start):.3g} → {np.median(achieved):.3g}"]])
    worst_table = markdown_table(["filter", "start", "achieved", "photographs' mean", "ratio"],
                                 [[i, f"{start[i]:.3g}", f"{achieved[i]:.3g}", f"{natural[i]:.3g}", ratio_text(ratio[i])]
                                  for i in worst])
    print(table)
    study.write_summary(
        f"# Activation maximisation: {args.layer} filters\n\n{source}; filters 0–{args.units - 1} of {args.layer}, "
        f"each maximised {'after' if args.relu else 'before'} its ReLU by {args.iterations} steps of normalised "
        f"gradient ascent ({args.step:g} grey levels each, jitter {args.jitter} px, blur {args.blur:g}) from grey "
        f"noise at {args.size}×{args.size}, all in one call.  Activation: the filter's mean over space after the "
        f"ReLU; ratio: the optimised image's over the filter's mean on the {len(PHOTOGRAPHS)} sample photographs "
        f"({', '.join(PHOTOGRAPHS)}) at the same size (∞: silent on every photograph, active here).\n\n{table}\n\n"
        f"The five lowest ratios:\n\n{worst_table}\n\n![filters](filters.png)\n")


if __name__ == "__main__":
    experiment.main(run)
