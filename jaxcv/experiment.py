"""What every study script shares: its command line, its run folder, its seeds and outputs.

A study writes ``<out>/config.json``, ``<out>/history.json`` (per variant and seed, a list
of per-epoch records), PNG figures and ``<out>/summary.md``.  A variant's seeds train
together, vmapped in one compiled function (``fit_many``), unless ``--sequential-seeds``;
every run is checkpointed under ``<out>/checkpoints``: rerunning an interrupted command
resumes it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import jax

from jaxcv import data as jdata
from jaxcv.train import FitResult, NonFiniteLossError, fit, fit_many, maybe_initialize_distributed

_RESUMABLE_CHANGES = {"epochs", "out", "no_progress"}


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def parser(study: str, description: str, *, dataset: str, epochs: int, batch_size: int,
           seeds: int) -> argparse.ArgumentParser:
    """The options every study takes, with the study's defaults."""
    datasets = ", ".join((*jdata.CATALOGUED, *jdata.EMBEDDED))
    p = argparse.ArgumentParser(
        prog=f"{study}.py", description=description,
        epilog=f"datasets: {datasets} (embedded ones are generated offline; any TFDS image "
               "classification dataset name also works). Rerun the same command to resume "
               "an interrupted run.")
    p.add_argument("--dataset", default=dataset, help=f"TFDS dataset name (default: {dataset})")
    p.add_argument("--epochs", type=positive_int, default=epochs, help=f"epochs per run (default: {epochs})")
    p.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"global batch size, split over all devices (default: {batch_size})")
    p.add_argument("--seeds", type=positive_int, default=seeds,
                   help=f"how many seeds per variant, 0..N-1 (default: {seeds})")
    p.add_argument("--sequential-seeds", action="store_true",
                   help="train the seeds one after another (per-model epoch times, 1/K of the "
                        "memory) instead of vmapped in one compiled call")
    p.add_argument("--train-size", type=positive_int, default=None,
                   help="use only the first N training examples (quick checks)")
    p.add_argument("--data-dir", default=None,
                   help="folder of prepared datasets or of a real dataset's original files (MNIST's four "
                        ".gz, the CIFAR python tarball), prepared there once (default: ~/tensorflow_datasets)")
    p.add_argument("--out", type=Path, default=None, help=f"run folder (default: runs/{study}/<dataset>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


class Study:
    """A study's run folder and the files it writes there."""

    def __init__(self, name: str, args: argparse.Namespace):
        self.name, self.args = name, args
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", args.dataset)
        self.out = Path(args.out or Path("runs") / name / slug)
        self.out.mkdir(parents=True, exist_ok=True)
        self.config = {"study": name, **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
        self._check_resumable()
        self._write_json("config.json", self.config)
        self.histories: dict[str, dict[str, list[dict[str, float]]]] = {}

    def _check_resumable(self) -> None:
        path = self.out / "config.json"
        if not (self.out / "checkpoints").exists() or not path.exists():
            return
        old = json.loads(path.read_text())
        changed = sorted(k for k in old.keys() | self.config.keys()
                         if k not in _RESUMABLE_CHANGES and old.get(k) != self.config.get(k))
        if changed:
            raise ValueError(f"{self.out} holds checkpoints of a run with other settings "
                             f"({', '.join(changed)}); pass another --out or delete that folder")

    def _write_json(self, name: str, obj: Any) -> Path:
        path = self.out / name
        path.write_text(json.dumps(obj, indent=1))
        return path

    def load_data(self, dataset: str | None = None) -> tuple[jdata.Arrays, jdata.Arrays, int]:
        """The train split, test split and class count of ``dataset`` (default: ``--dataset``)."""
        a = self.args
        dataset = dataset or a.dataset
        train = jdata.load_split(dataset, "train", a.data_dir)
        if a.train_size is not None:
            train = {k: v[: a.train_size] for k, v in train.items()}
        test = jdata.load_split(dataset, "test", a.data_dir)
        return train, test, jdata.num_classes(dataset, a.data_dir)

    def run(self, variant: str, make_model: Callable[[], Any], train: jdata.Arrays, val: jdata.Arrays | None,
            **fit_kwargs: Any) -> list[FitResult]:
        """Train ``variant`` once per seed (checkpointed, resumable); record its histories."""
        return self.sweep(variant, make_model, train, val, {}, **fit_kwargs)[variant]

    def sweep(self, name: str, make_model: Callable[[], Any], train: jdata.Arrays, val: jdata.Arrays | None,
              grid: Mapping[str, Sequence[float]], **fit_kwargs: Any) -> dict[str, list[FitResult]]:
        """Train every setting of ``grid`` (``{"dropout_rate": [0.2, 0.5]}``: values of model
        fields or optimizer hyper-parameters, zipped) once per seed, all as one ``fit_many``
        call; record each setting as the variant ``name[dropout_rate=0.2]``.  An empty grid
        is the one variant ``name``.  ``fit_kwargs`` go to ``fit_many`` and may override
        ``epochs`` and ``batch_size``."""
        settings = [dict(zip(grid, values)) for values in zip(*grid.values())] if grid else [{}]
        variants = [f"{name}[{', '.join(f'{k}={v:g}' for k, v in s.items())}]" if s else name for s in settings]
        seeds = list(range(self.args.seeds))
        common = {"epochs": self.args.epochs, "batch_size": self.args.batch_size,
                  "progress": not self.args.no_progress, **fit_kwargs}
        if self.args.sequential_seeds:
            results = [fit(make_model(), train, val, seed=seed, hparams=setting, desc=f"{variant} seed {seed}",
                           checkpoint_dir=self.out / "checkpoints" / variant / f"seed{seed}", **common)
                       for variant, setting in zip(variants, settings) for seed in seeds]
        else:
            hparams = {k: [s[k] for s in settings for _ in seeds] for k in grid}
            results = fit_many(make_model(), train, val, seeds=seeds * len(settings), hparams=hparams,
                               checkpoint_dir=self.out / "checkpoints" / name, desc=name, **common)
        out = {}
        for i, variant in enumerate(variants):
            out[variant] = results[i * len(seeds):(i + 1) * len(seeds)]
            self.histories[variant] = {str(seed): r.history for seed, r in zip(seeds, out[variant])}
        self._write_json("history.json", self.histories)
        return out

    def figure(self, name: str) -> Path:
        return self.out / f"{name}.png"

    def write_summary(self, text: str) -> Path:
        path = self.out / "summary.md"
        path.write_text(text.rstrip() + "\n")
        return path


def enable_compilation_cache() -> None:
    """Keep compiled programs on disk, so that a rerun (a resumed or extended study) skips
    compiling: in ``$JAX_COMPILATION_CACHE_DIR`` if set, else ``~/.cache/jaxcv/xla``
    (``JAX_ENABLE_COMPILATION_CACHE=false`` turns it off)."""
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(Path.home() / ".cache" / "jaxcv" / "xla"))


def main(run: Callable[[], None]) -> None:
    """Run a study's ``run()``, turning expected failures into one clear line and exit code 2."""
    enable_compilation_cache()
    maybe_initialize_distributed()
    try:
        run()
    except (jdata.DataUnavailableError, NonFiniteLossError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last finished epoch",
              file=sys.stderr)
        raise SystemExit(130) from None
