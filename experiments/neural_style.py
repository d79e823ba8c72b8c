"""Neural style transfer (report 001, Task 5) on VGG16: content conv4_2, style Grams of
conv1_1 … conv5_1, kept after 1, 5, 10 and 20 iterations; then only conv1_1 + conv2_1 and only
conv4_1 + conv5_1 as the style layers.

--preset keras is Keras' neural_style_transfer.py (2016-17): 400 rows with the aspect kept,
content weight 0.025, style 1, total variation 1, each iteration one L-BFGS run of 20
evaluations, from noise.  On these weights its content term is some 300 times smaller than the
style term, so the content never forms.  The default --preset content starts from the content
image (Gatys et al.'s and PyTorch's tutorial's choice: the picture begins as the content and
takes on the style) with content weight 2 and total variation 0.1 at 96x96 px, scaled to the
image's pixel count (the content and variation terms grow with it, Keras' style term does not),
so the balance is the same at any size.  --start, --content-weight, --tv-weight override a
preset (the weights as given, unscaled).  Writes the images per layer set and
iteration, the content and style losses at the start and after each kept iteration, and the
content error: the content loss over the content's own squared features at conv4_2 (0 for the
content itself; beside it that of the starting noise and of the style image).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import numpy as np

from jaxcv import experiment
from jaxcv.data.images import write_png
from jaxcv.errors import UsageError
from jaxcv.synthesis import Network, Result, optimise, score
from jaxcv.synthesis.samples import load_image
from jaxcv.synthesis.study import add_weights_option, network_for, open_study
from jaxcv.synthesis.style import PRESETS, STYLE_LAYERS, noise_image, style_objective, style_settings
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
    p.add_argument("--preset", choices=PRESETS, default="content",
                   help="; ".join(f"{name}: {preset}" for name, preset in PRESETS.items()))
    p.add_argument("--start", choices=("noise", "content"), default=None, help="the starting image (default: the preset's)")
    p.add_argument("--content-weight", type=float, default=None, help="(default: the preset's, scaled)")
    p.add_argument("--style-weight", type=float, default=1.0)
    p.add_argument("--tv-weight", type=float, default=None, help="total variation weight (default: the preset's, scaled)")
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
        given = {"start": args.start, "content_weight": args.content_weight, "tv_weight": args.tv_weight}
        preset = dataclasses.replace(PRESETS[args.preset].for_image(content.shape),
                                     **{k: v for k, v in given.items() if v is not None})
        objectives = {name: style_objective(net, content, style, style_layers=LAYER_SETS[name],
                                            content_weight=preset.content_weight, style_weight=args.style_weight,
                                            tv_weight=preset.tv_weight) for name in names}
        for objective in objectives.values():
            objective.check()
        return settings, content, style, net, source, preset, objectives

    study, (settings, content, style, network, source, preset, objectives) = open_study(STUDY, p, argv, prepare)
    args = study.args
    noise = noise_image(jax.random.key(args.seed), content.shape[:2])
    start = noise if preset.start == "noise" else content
    # each layer set's result kept once made: a rerun after an interrupt optimises only the rest
    results = {name: Result.from_arrays(study.resumable(name, lambda: optimise(  # noqa: B023 (called at once)
        network, objective, start, settings, progress=None if args.no_progress else f"style layers: {name}").arrays()))
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
    first = next(iter(objectives.values()))
    content_norm = float(np.sum(np.square(first.minimise["content"].target)))  # the content's own ||F||^2
    noise_error, style_error = score(network, first, np.stack([noise, style]))["content"] / content_norm
    for n in numbers.values():
        n.update(content_error=[c / content_norm for c in n["content"]], content_norm=content_norm,
                 noise_content_error=float(noise_error), style_content_error=float(style_error))
    study.write_results("losses", numbers)

    rows = []
    for name, n in numbers.items():
        rows.append([name, ", ".join(objectives[name].minimise["style"].layers), f"{n['style'][0]:.4g}",
                     f"{n['style'][-1]:.4g}", f"{n['style'][0] / n['style'][-1]:.1f}×",
                     f"{n['content_error'][0]:.3f}", f"{n['content_error'][-1]:.3f}",
                     f"{np.mean(n['evaluations']):.1f}"])
    table = markdown_table(["layers", "style layers", "style loss at start", "at end", "lowered", "content error at start",
                            "at end", "evaluations / iteration"], rows)
    per_iteration = markdown_table(["layers", *(f"after {i}" for i in kept)],
                                   [[name, *(f"{s:.3g} / {c:.3f}" for s, c in zip(n["style"][1:], n["content_error"][1:]))]
                                    for name, n in numbers.items()])
    print(table)
    start_text = f"uniform noise (seed {args.seed})" if preset.start == "noise" else "the content image"
    study.write_summary(
        f"# Neural style: {args.content} in the style of {args.style}\n\n{source}; {content.shape[0]}×"
        f"{content.shape[1]} px; content conv4_2 × {preset.content_weight:.3g}, style × {args.style_weight:g}, "
        f"total variation × {preset.tv_weight:.3g}; {args.iterations} iterations of L-BFGS ({args.evaluations} "
        f"evaluations each) from {start_text} "
        f"(preset `{args.preset}`).  Style loss: the unweighted style term over its own layers.  Content error: "
        f"the content loss over the content's own squared conv4_2 features ({content_norm:.4g}); the starting "
        f"noise's is {noise_error:.3f}, the style image's {style_error:.3f}.\n\n{table}\n\nStyle loss / content "
        f"error after each kept iteration:\n\n"
        f"{per_iteration}\n\n![iterations](iterations.png)\n")


if __name__ == "__main__":
    experiment.main(run)
