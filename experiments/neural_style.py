"""Neural style transfer (report 001, Task 5) on VGG16: content conv4_2, style Grams of
conv1_1 … conv5_1, kept after 1, 5, 10 and 20 iterations; then only conv1_1 + conv2_1 and only
conv4_1 + conv5_1 as the style layers.

As Keras' neural_style_transfer.py (2016-17): 400 rows with the aspect kept, content weight
0.025, style 1, total variation 1, each iteration one L-BFGS run of 20 evaluations, from noise.
Writes the images per layer set and iteration, and the content and style losses at the start
and after each kept iteration.
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from jaxcv import experiment
from jaxcv.data.images import write_png
from jaxcv.errors import UsageError
from jaxcv.synthesis import Network, optimise
from jaxcv.synthesis.samples import load_image
from jaxcv.synthesis.study import add_weights_option, network_for, open_study
from jaxcv.synthesis.style import STYLE_LAYERS, noise_image, style_objective, style_settings
from jaxcv.viz import image_grid, markdown_table

STUDY = "neural_style"
LAYER_SETS = {"all": STYLE_LAYERS, "first": ("conv1_1", "conv2_1"), "last": ("conv4_1", "conv5_1")}
SNAPSHOTS = (1, 5, 10, 20)


def run(argv: Sequence[str] | None = None, network: Network | None = None) -> None:
    """The study from ``argv``; ``network`` replaces VGG16 from ``--weights`` (tests)."""
    p = experiment.base_parser(STUDY, __doc__)
    add_weights_option(p)
    p.add_argument("--content", default="astronaut", help="content image: a JPEG/PNG or a sample name")
    p.add_argument("--style", default="hubble_deep_field", help="style image: a JPEG/PNG or a sample name")
    p.add_argument("--rows", type=experiment.positive_int, default=400, help="image height, px (aspect kept)")
    p.add_argument("--iterations", type=experiment.positive_int, default=20, help="L-BFGS runs")
    p.add_argument("--evaluations", type=experiment.positive_int, default=20, help="evaluations per L-BFGS run")
    p.add_argument("--content-weight", type=float, default=0.025)
    p.add_argument("--style-weight", type=float, default=1.0)
    p.add_argument("--tv-weight", type=float, default=1.0, help="total variation weight")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting noise")
    p.add_control("--layer-sets", default=",".join(LAYER_SETS),
                  help=f"comma-separated style layer sets to run, from {', '.join(LAYER_SETS)}")

    def prepare(args):
        names = [name for name in args.layer_sets.split(",") if name]
        if not names or any(name not in LAYER_SETS for name in names):
            raise UsageError(f"--layer-sets {args.layer_sets!r}: choose from {', '.join(LAYER_SETS)}")
        settings = style_settings(args.iterations, args.evaluations,
                                  snapshots=tuple(s for s in SNAPSHOTS if s < args.iterations))
        content = load_image(args.content, rows=args.rows)
        style = load_image(args.style, shape=content.shape[:2])
        net, source = network_for(args, network)
        objectives = {name: style_objective(net, content, style, style_layers=LAYER_SETS[name],
                                            content_weight=args.content_weight, style_weight=args.style_weight,
                                            tv_weight=args.tv_weight) for name in names}
        for objective in objectives.values():
            objective.check()
        return settings, content, style, net, source, objectives

    study, (settings, content, style, network, source, objectives) = open_study(STUDY, p, argv, prepare)
    args = study.args
    start = noise_image(jax.random.key(args.seed), content.shape[:2])
    results = {name: optimise(network, objective, start, settings,
                              progress=None if args.no_progress else f"style layers: {name}")
               for name, objective in objectives.items()}

    kept = results[next(iter(results))].iterations[1:]
    image_grid([image for r in results.values() for image in (content, style, *(r.at(i)[0] for i in kept))],
               study.figure("iterations"), rows=len(results), row_labels=list(results),
               titles=[t for _ in results for t in ("content", "style", *(f"{i} iteration(s)" for i in kept))],
               title=f"neural style: {args.content} in the style of {args.style}", cell_inches=2.0)
    for name, r in results.items():
        write_png(study.out / f"{name}.png", r.final[0])
    numbers = {name: {"iterations": list(r.iterations), "evaluations": r.evaluations[0].tolist(),
                      **{term: values[0].tolist() for term, values in r.terms.items()}, "loss": r.loss[0].tolist()}
               for name, r in results.items()}
    study.write_results("losses", numbers)

    rows = []
    for name, n in numbers.items():
        rows.append([name, ", ".join(objectives[name].minimise["style"].layers), f"{n['style'][0]:.4g}",
                     f"{n['style'][-1]:.4g}", f"{n['style'][0] / n['style'][-1]:.0f}×", f"{n['content'][0]:.4g}",
                     f"{n['content'][-1]:.4g}", f"{np.mean(n['evaluations']):.1f}"])
    table = markdown_table(["layers", "style layers", "style loss at start", "at end", "lowered", "content loss at start",
                            "at end", "evaluations / iteration"], rows)
    per_iteration = markdown_table(["layers", *(f"after {i}" for i in kept)],
                                   [[name, *(f"{s:.3g} / {c:.3g}" for s, c in zip(n["style"][1:], n["content"][1:]))]
                                    for name, n in numbers.items()])
    print(table)
    study.write_summary(
        f"# Neural style: {args.content} in the style of {args.style}\n\n{source}; {content.shape[0]}×"
        f"{content.shape[1]} px; content conv4_2 × {args.content_weight:g}, style × {args.style_weight:g}, "
        f"total variation × {args.tv_weight:g}; {args.iterations} iterations of L-BFGS ({args.evaluations} "
        f"evaluations each) from uniform noise (seed {args.seed}).  Losses are the unweighted terms (the style "
        f"term over its own layers).\n\n{table}\n\nStyle / content loss after each kept iteration:\n\n"
        f"{per_iteration}\n\n![iterations](iterations.png)\n")


if __name__ == "__main__":
    experiment.main(run)
