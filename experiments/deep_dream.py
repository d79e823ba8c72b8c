"""Deep dream (report 000, Task 5) on VGG16: one photograph dreamed with layer-2 and with layer-5
convolutions, then with layer 5 at other continuity / dream / jitter settings.

The variants are Keras' deep_dream.py (2016-17, its "dreamy" and "bad_trip" presets): the
weighted L2 norms of the layers maximised, total variation ("continuity", 0.1) and image L2
("dream", 0.02 or 0.8) minimised, a random noise of 0 or 5 grey levels each step ("jitter"),
600 rows.  --preset keras is its loop: 5 rounds of L-BFGS with 7 evaluations at one scale, the
weights as they are.  The default --preset ascent is the original deep dream's loop: 10
normalised gradient steps of 1.5 grey levels, each with a random shift of up to 32 px, at 4
octaves 1.4 apart (the detail that shrinking lost put back at each), pixels kept valid; with
each weight taken relative to its term's value on the photograph, so that Keras' weights, set
for the ImageNet VGG16, keep their balance on other weights (on the offline HED VGG16 Keras'
continuity term is hundreds of times the layer-5 score and flattens the picture).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import numpy as np

from jaxcv import experiment
from jaxcv.data.images import write_png
from jaxcv.errors import UsageError
from jaxcv.synthesis import Network, score
from jaxcv.synthesis.dream import LOOPS, PRESETS, Dream, calibrated, dream_objective, octave_shapes, optimise_octaves
from jaxcv.synthesis.samples import load_image
from jaxcv.synthesis.study import add_weights_option, network_for, open_study
from jaxcv.viz import image_grid, markdown_table

STUDY = "deep_dream"
DREAMY = PRESETS["dreamy"]
VARIANTS = {
    "layer2": dataclasses.replace(DREAMY, layers={"conv2_1": 0.05, "conv2_2": 0.02}),
    "layer5": DREAMY,
    "layer5_dream0.8": dataclasses.replace(DREAMY, dream_l2=0.8),
    "layer5_jitter5": dataclasses.replace(DREAMY, jitter=5),
    "layer5_continuity1": dataclasses.replace(DREAMY, continuity=1.0),
    "bad_trip": PRESETS["bad_trip"],
}


def describe(dream: Dream) -> list[str]:
    return [" + ".join(f"{layer} × {w:g}" for layer, w in dream.layers.items()), f"{dream.continuity:g}",
            f"{dream.dream_l2:g}", f"{dream.jitter:g}"]


def run(argv: Sequence[str] | None = None, network: Network | None = None) -> None:
    """The study from ``argv``; ``network`` replaces VGG16 from ``--weights`` (tests)."""
    p = experiment.base_parser(STUDY, __doc__)
    add_weights_option(p)
    p.add_argument("--image", default="chelsea", help="the photograph: a JPEG/PNG or a sample name")
    p.add_argument("--rows", type=experiment.positive_int, default=600, help="image height, px (aspect kept)")
    p.add_argument("--preset", choices=LOOPS, default="ascent", help="the loop: " + "; ".join(
        f"{name}: {loop}" for name, loop in LOOPS.items()))
    p.add_argument("--iterations", type=experiment.positive_int, default=None,
                   help="gradient steps (ascent) or L-BFGS rounds (keras) per octave (default: the preset's)")
    p.add_argument("--evaluations", type=experiment.positive_int, default=None,
                   help="--preset keras: evaluations per L-BFGS round (default: the preset's)")
    p.add_argument("--octaves", type=experiment.positive_int, default=None,
                   help="scales, each --octave-scale times the one before (default: the preset's)")
    p.add_argument("--octave-scale", type=float, default=1.4, help="size ratio between octaves")
    p.add_argument("--seed", type=int, default=0, help="seed of the jitter noise")
    p.add_control("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")

    def prepare(args):
        names = [name for name in args.variants.split(",") if name]
        if not names or any(name not in VARIANTS for name in names):
            raise UsageError(f"--variants {args.variants!r}: choose from {', '.join(VARIANTS)}")
        preset = LOOPS[args.preset]
        if args.evaluations is not None and preset.evaluations is None:
            raise UsageError(f"--evaluations counts L-BFGS evaluations; --preset {args.preset} takes gradient steps")
        chosen = {name: getattr(args, name) for name in ("iterations", "evaluations", "octaves")
                  if getattr(args, name) is not None}
        loop = dataclasses.replace(preset, **chosen)
        image = load_image(args.image, rows=args.rows)
        smallest = octave_shapes(image.shape[:2], loop.octaves, args.octave_scale)[0]
        net, source = network_for(args, network)
        net.check(tuple({layer for name in names for layer in VARIANTS[name].layers}), (*smallest, 3))
        objectives = {name: calibrated(net, VARIANTS[name], image) if loop.calibrate
                      else functools.partial(dream_objective, VARIANTS[name]) for name in names}
        return loop, image, net, source, objectives

    study, (loop, image, network, source, objectives) = open_study(STUDY, p, argv, prepare)
    args = study.args
    dreams, scores = {}, {}
    for name, objective_for in objectives.items():
        # each variant's dream kept once made: a rerun after an interrupt dreams only the rest
        dreams[name] = study.resumable(name, lambda: {"dream": optimise_octaves(  # noqa: B023 (called at once)
            network, objective_for, image, loop.settings(VARIANTS[name]), loop.octaves, args.octave_scale,
            key=jax.random.key(args.seed), progress=None if args.no_progress else name)[-1].final[0]})["dream"]
        write_png(study.out / f"{name}.png", dreams[name])
        # every term of the photograph and of its dream, as the network sees them, weighted as optimised
        objective = objective_for(image.shape)
        before_after = score(network, objective, np.stack([image, dreams[name]]))
        scores[name] = {term: values.tolist() for term, values in before_after.items()}
        scores[name]["weights"] = dict(objective.weights)

    image_grid([image, *dreams.values()], study.figure("dreams"), titles=[args.image, *dreams], rows=1,
               title=f"deep dream of {args.image}", cell_inches=2.5)
    study.write_results("scores", scores)
    rows = []
    for name, terms in scores.items():
        weighted = [sum(terms["weights"][f"dream_{layer}"] * terms[f"dream_{layer}"][k] for layer in VARIANTS[name].layers)
                    for k in (0, 1)]
        rows.append([name, *describe(VARIANTS[name]), f"{weighted[0]:.4g} → {weighted[1]:.4g}",
                     f"{terms['continuity'][0]:.3g} → {terms['continuity'][1]:.3g}"])
    table = markdown_table(["variant", "layers", "continuity", "dream (L2)", "jitter (levels)",
                            "dream score: photo → dream", "total variation: photo → dream"], rows)
    print(table)
    if loop.calibrate:
        weights = ("Weights (layers, continuity, dream) are relative to each term's value on the photograph at each "
                   "octave: on the photograph every weighted term equals its weight.")
    else:
        weights = "Weights as Keras' example has them (continuity and dream per pixel value of the 0-255 input)."
    study.write_summary(
        f"# Deep dream of {args.image}\n\n{source}; {image.shape[0]}×{image.shape[1]} px, preset `{args.preset}`: "
        f"{loop.octaves} octave(s) {args.octave_scale:g} apart, {loop.per_octave} per octave.  {weights}  "
        f"Dream score: the weighted sum of the layers' L2 norms (what is maximised), of the photograph and of its "
        f"dream, weighted as at the full size.\n\n{table}\n\n![dreams](dreams.png)\n")


if __name__ == "__main__":
    experiment.main(run)
