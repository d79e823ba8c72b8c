"""Real-time data augmentation on CIFAR-10 (reports 000, 001, 002), run on the device.

compare (reports 000, 001): the Keras cifar10_cnn example's ImageDataGenerator (width and height
shifts of 10 %, horizontal flips) against no augmentation, --seeds seeds each.
grid (report 002): every combination of rotation 0/20°, width shift 0/20 %, height shift 0/20 %,
shear 0/20 % (a shear factor of 0.2, i.e. 11.3°), zoom 0/20 %, horizontal flip and vertical
flip: 2^7 = 128 cells of --grid-seeds seed(s) each (--grid-transforms varies fewer), ranked by
test accuracy (history.json names its variants grid/<cell>).

Writes curves, a figure of augmented examples per setting and summary.md with the tables and
the seconds per epoch with and without augmentation (the cost of augmenting on the device).
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
from typing import Sequence

import jax
import numpy as np

from jaxcv import experiment
from jaxcv.data import Augment
from jaxcv.models import get_model
from jaxcv.train import FitResult, make_optimizer
from jaxcv.viz import FIT_COLUMNS, epoch_seconds, fit_row, image_grid, markdown_table, plot_runs

STUDY = "augmentation_cifar"
COMPARE = {"none": Augment(), "keras_cifar10_cnn": Augment(width_shift=0.1, height_shift=0.1, horizontal_flip=True)}
GRID = {"rotation": 20.0, "width_shift": 0.2, "height_shift": 0.2, "shear": math.degrees(math.atan(0.2)),
        "zoom": 0.2, "horizontal_flip": True, "vertical_flip": True}


def grid_cells(transforms: list[str]) -> dict[str, Augment]:
    """One ``Augment`` per on/off combination of ``transforms``, named by the ones on."""
    cells = {}
    for on in itertools.product((False, True), repeat=len(transforms)):
        chosen = [t for t, flag in zip(transforms, on) if flag]
        cells["+".join(chosen) or "none"] = Augment(**{t: GRID[t] for t in chosen})
    return dict(sorted(cells.items(), key=lambda kv: kv[0].count("+") + (kv[0] != "none")))


def switched_on(cell: str) -> set[str]:
    return set(cell.split("+"))


def transforms_arg(text: str) -> list[str]:
    names = [t for t in text.split(",") if t]
    unknown = [t for t in names if t not in GRID]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(GRID)}; got {text!r}")
    return names


def examples_figure(study: experiment.Study, images: np.ndarray, settings: dict[str, Augment], draws: int = 5) -> None:
    """Each setting's random draws of the same training images, one row per setting."""
    batch = np.repeat(images.astype(np.float32) / 255, draws, axis=0)
    apply = jax.jit(lambda augment, rng, x: augment(rng, x), static_argnums=0)
    rows = [np.asarray(apply(augment, jax.random.key(i), batch)) for i, augment in enumerate(settings.values())]
    image_grid(np.concatenate(rows), study.figure("augmented_examples"), rows=len(rows), row_labels=list(settings),
               title="random draws per setting")


def run(argv: Sequence[str] | None = None) -> None:
    p = experiment.parser(STUDY, __doc__, dataset="cifar10", epochs=20, batch_size=128, seeds=3,
                          optimizer="adam", lr=1e-3)
    p.add_control("--part", choices=("compare", "grid", "all"), default="all", help="which study to run")
    p.add_argument("--grid-seeds", type=experiment.positive_int, default=1, help="seeds per grid cell")
    p.add_control("--grid-transforms", type=transforms_arg, default=list(GRID),
                  help=f"comma-separated transforms the grid switches on and off, from {','.join(GRID)}")
    study = experiment.Study(STUDY, p, argv)
    args = study.args
    train, test, num_classes = study.load_data()
    model, optimizer = get_model("cifar_cnn", num_classes=num_classes), make_optimizer(args.optimizer, args.lr)

    def train_all(variants: dict[str, Augment], prefix: str = "", seeds: int | None = None
                  ) -> dict[str, list[FitResult]]:
        return {name: study.run(prefix + name, model, train, test, seeds=seeds, optimizer=optimizer, augment=augment)
                for name, augment in variants.items()}

    singles = {t: Augment(**{t: GRID[t]}) for t in GRID}
    examples_figure(study, train["image"][:2], {**COMPARE, **singles, "all seven": Augment(**GRID)})
    summary = [(f"# Real-time augmentation on {args.dataset}\n\n`cifar_cnn`, {args.optimizer} lr {args.lr}, batch "
                f"{args.batch_size}, {args.epochs} epochs; augmentation runs inside the compiled epoch.\n\n"
                "![augmented examples](augmented_examples.png)\n")]
    if args.part in ("compare", "all"):
        results = train_all(COMPARE)
        plot_runs(results, study.figure("curves"), title=f"cifar_cnn on {args.dataset}: with and without augmentation")
        table = markdown_table(["variant", *FIT_COLUMNS], [[v, *fit_row(rs)] for v, rs in results.items()])
        cost = [epoch_seconds(rs) for rs in results.values()]
        summary.append(f"## With and without augmentation (reports 000, 001)\n\n`keras_cifar10_cnn`: width and "
                       f"height shift 10 %, horizontal flip. {args.seeds} seed(s), mean ± std.\n\n{table}\n\n"
                       f"Augmenting on the device changes the median epoch time by "
                       f"{100 * (cost[1] / cost[0] - 1):+.1f} %.\n\n![curves](curves.png)\n")
    if args.part in ("grid", "all"):
        results = train_all(grid_cells(args.grid_transforms), prefix="grid/", seeds=args.grid_seeds)
        summary.append(grid_summary(study, results))
    print("\n".join(summary))
    study.write_summary("\n".join(summary))


def grid_summary(study: experiment.Study, results: dict[str, list[FitResult]]) -> str:
    """The grid's cells ranked by final test accuracy, each transform's main effect, and the
    curves of the best three cells, the worst and none."""
    args = study.args
    accuracy = {name: statistics.fmean(r.history[-1]["val_accuracy"] for r in rs) for name, rs in results.items()}
    ranked = sorted(results.items(), key=lambda kv: -accuracy[kv[0]])
    table = markdown_table(["rank", *args.grid_transforms, *FIT_COLUMNS], [
        [i, *("✓" if t in switched_on(name) else "" for t in args.grid_transforms), *fit_row(rs)]
        for i, (name, rs) in enumerate(ranked, 1)])
    effects = markdown_table(["transform", "mean test acc with", "without", "difference"], [
        (t, f"{with_t:.3f}", f"{without:.3f}", f"{with_t - without:+.3f}") for t in args.grid_transforms
        for with_t, without in [(statistics.fmean(a for n, a in accuracy.items() if t in switched_on(n)),
                                 statistics.fmean(a for n, a in accuracy.items() if t not in switched_on(n)))]])
    shown = dict(ranked[:3] + ranked[-1:]) | {"none": results["none"]}
    plot_runs(shown, study.figure("grid_curves"), title=f"grid on {args.dataset}: best three, worst and none")
    return (f"## Report 002's grid\n\n{len(results)} cells, {args.grid_seeds} seed(s) each, ranked by final test "
            f"accuracy; shear 20 % is a shear factor of 0.2 ({GRID['shear']:.1f}°).\n\n{table}\n\n"
            f"Each transform's main effect (mean over the cells with it on vs off):\n\n{effects}\n\n"
            "![grid curves](grid_curves.png)\n")


if __name__ == "__main__":
    experiment.main(run)
