"""Real-time data augmentation on CIFAR-10 (seeds 000, 001, 002), run on the device.

compare (seeds 000, 001): the Keras cifar10_cnn example's ImageDataGenerator (width and height
shifts of 10 %, horizontal flips) against no augmentation, --seeds seeds each.
grid (seed 002): every combination of rotation 0/20°, width shift 0/20 %, height shift 0/20 %,
shear 0/20 % (a shear factor of 0.2, i.e. 11.3°), zoom 0/20 %, horizontal flip and vertical
flip: 2^7 = 128 cells of --grid-seeds seed(s) each (--grid-transforms varies fewer), ranked by
test accuracy.

Writes curves, a figure of augmented examples per setting and summary.md with the tables and
the seconds per epoch with and without augmentation (the cost of augmenting on the device).
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics

import jax
import numpy as np

from jaxcv import experiment
from jaxcv.data import Augment
from jaxcv.models import get_model
from jaxcv.train import OPTIMIZERS, FitResult, make_optimizer
from jaxcv.viz import FIT_COLUMNS, epoch_seconds, fit_row, image_grid, markdown_table, plot_runs

STUDY = "augmentation_cifar"
COMPARE = {"none": Augment(), "keras_cifar10_cnn": Augment(width_shift=0.1, height_shift=0.1, horizontal_flip=True)}
GRID = {"rotation": 20.0, "width_shift": 0.2, "height_shift": 0.2, "shear": math.degrees(math.atan(0.2)),
        "zoom": 0.2, "horizontal_flip": True, "vertical_flip": True}
PART_OPTIONS = ("part", "grid_seeds", "grid_transforms")  # which runs to make; no run's settings


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


def run() -> None:
    p = experiment.parser(STUDY, __doc__, dataset="cifar10", epochs=20, batch_size=128, seeds=3)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--part", choices=("compare", "grid", "all"), default="all", help="which study to run (default: all)")
    p.add_argument("--grid-seeds", type=experiment.positive_int, default=1, help="seeds per grid cell (default: 1)")
    p.add_argument("--grid-transforms", type=transforms_arg, default=list(GRID),
                   help=f"comma-separated transforms the grid switches on and off (default: all, {','.join(GRID)})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="(default: adam)")
    p.add_argument("--lr", type=experiment.positive_float, default=1e-3, help="learning rate (default: 1e-3)")
    args = p.parse_args()
    run_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in PART_OPTIONS})
    study = experiment.Study(STUDY, run_args)
    train, test, num_classes = study.load_data()

    def train_all(on: experiment.Study, variants: dict[str, Augment]) -> dict[str, list[FitResult]]:
        return {name: on.run(name, lambda: get_model("cifar_cnn", num_classes=num_classes), train, test,
                             optimizer=make_optimizer(args.optimizer, args.lr), augment=augment)
                for name, augment in variants.items()}

    singles = {t: Augment(**{t: GRID[t]}) for t in GRID}
    examples_figure(study, train["image"][:2], {**COMPARE, **singles, "all seven": Augment(**GRID)})
    summary = [(f"# Real-time augmentation on {args.dataset}\n\n`cifar_cnn`, {args.optimizer} lr {args.lr}, batch "
                f"{args.batch_size}, {args.epochs} epochs; augmentation runs inside the compiled epoch.\n\n"
                "![augmented examples](augmented_examples.png)\n")]
    if args.part in ("compare", "all"):
        results = train_all(study, COMPARE)
        plot_runs({v: [r.history for r in rs] for v, rs in results.items()}, study.figure("curves"),
                  title=f"cifar_cnn on {args.dataset}: with and without augmentation")
        table = markdown_table(["variant", *FIT_COLUMNS], [[v, *fit_row(rs)] for v, rs in results.items()])
        cost = [epoch_seconds(rs) for rs in results.values()]
        summary.append(f"## With and without augmentation (seeds 000, 001)\n\n`keras_cifar10_cnn`: width and height "
                       f"shift 10 %, horizontal flip. {args.seeds} seed(s), mean ± std.\n\n{table}\n\nAugmenting "
                       f"on the device changes the median epoch time by {100 * (cost[1] / cost[0] - 1):+.1f} %.\n\n"
                       "![curves](curves.png)\n")
    if args.part in ("grid", "all"):
        grid_study = experiment.Study(STUDY, argparse.Namespace(**{**vars(run_args), "seeds": args.grid_seeds,
                                                                   "out": study.out / "grid"}))
        results = train_all(grid_study, grid_cells(args.grid_transforms))
        ranked = sorted(results.items(), key=lambda kv: -statistics.fmean(r.history[-1]["val_accuracy"] for r in kv[1]))
        table = markdown_table(["rank", *args.grid_transforms, *FIT_COLUMNS], [
            [i, *("✓" if t in switched_on(name) else "" for t in args.grid_transforms), *fit_row(rs)]
            for i, (name, rs) in enumerate(ranked, 1)])
        accuracy = {name: statistics.fmean(r.history[-1]["val_accuracy"] for r in rs) for name, rs in results.items()}
        effects = markdown_table(["transform", "mean test acc with", "without", "difference"], [
            (t, f"{with_t:.3f}", f"{without:.3f}", f"{with_t - without:+.3f}") for t in args.grid_transforms
            for with_t, without in [(statistics.fmean(a for n, a in accuracy.items() if t in switched_on(n)),
                                     statistics.fmean(a for n, a in accuracy.items() if t not in switched_on(n)))]])
        shown = dict(ranked[:3] + ranked[-1:]) | {"none": results["none"]}
        plot_runs({n: [r.history for r in rs] for n, rs in shown.items()}, study.figure("grid_curves"),
                  title=f"grid on {args.dataset}: best three, worst and none")
        summary.append(f"## Seed 002's grid\n\n{len(results)} cells, {args.grid_seeds} seed(s) each, ranked by final "
                       f"test accuracy; shear 20 % is a shear factor of 0.2 ({GRID['shear']:.1f}°).\n\n{table}\n\n"
                       f"Each transform's main effect (mean over the cells with it on vs off):\n\n{effects}\n\n"
                       "![grid curves](grid_curves.png)\n")
    study.write_summary("\n".join(summary))
    print("\n".join(summary))
    print(f"wrote {study.out}")


if __name__ == "__main__":
    experiment.main(run)
