"""What every study script shares: its command line, its run folder, its runs and outputs.

A study writes ``<out>/config.json`` (the options that define its runs, and under
``executions`` the convolution formulation and epoch driver each group of runs trained with),
``<out>/history.json`` (per variant and seed, a list of per-epoch records),
``<out>/tensorboard/<variant>/seed<k>/`` (TensorBoard event files, written as the runs
train), PNG figures and ``<out>/summary.md``.  A variant's seeds train together, vmapped in
one compiled function (``fit_many``), unless ``--sequential-seeds``; every run is
checkpointed under ``<out>/checkpoints``: rerunning an interrupted command resumes it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax

from jaxcv import data as jdata
from jaxcv.errors import UsageError
from jaxcv.train import (OPTIMIZERS, Arrays, BatchStream, FitResult, History, TensorBoardLog, fit_many,
                         host_batches, maybe_initialize_distributed)
from jaxcv.train.steps import PRECISIONS


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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` keeps a study's description as written and shows each option's default
    (none for flags and options whose absence is their default)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default in (None, False) else super()._get_help_string(action)


class StudyParser(argparse.ArgumentParser):
    """A study's command line, whose options are of two kinds.

    ``add_argument`` declares one that defines the study's runs: rerunning a run folder
    with it changed is refused, as it would mix two experiments.  ``add_control`` declares
    one that only says which runs to make, for how long, where or how verbosely: a rerun
    with it changed resumes the same runs.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(formatter_class=HelpFormatter, **kwargs)
        self._controls = self.add_argument_group("running", "a rerun that changes these resumes the same runs")
        self._control_names = {"help"}

    def add_control(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = self._controls.add_argument(*args, **kwargs)
        self._control_names.add(action.dest)
        return action

    def identity(self, args: argparse.Namespace) -> dict[str, Any]:
        """The values of the options that define the runs (JSON-ready)."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in self._control_names}


def parser(study: str, description: str, *, dataset: str, epochs: int, batch_size: int, seeds: int,
           optimizer: str | None = None, lr: float | None = None, examples: int | None = None) -> StudyParser:
    """The options every study takes, with the study's defaults; ``--optimizer``, ``--lr`` and
    ``--examples`` (test images in its figures) when it gives their defaults."""
    datasets = ", ".join((*jdata.CATALOGUED, *jdata.EMBEDDED))
    p = StudyParser(prog=f"{study}.py", description=description,
                    epilog=textwrap.fill(f"datasets: {datasets} (embedded ones are generated offline; any TFDS "
                                         "image classification dataset name also works). Rerun the same "
                                         "command to resume an interrupted run.", 90))
    p.add_argument("--dataset", default=dataset, help="TFDS dataset name")
    p.add_argument("--batch-size", type=positive_int, default=batch_size, help="global batch size, split over all devices")
    p.add_argument("--seeds", type=positive_int, default=seeds, help="how many seeds per variant, 0..N-1")
    p.add_argument("--train-size", type=positive_int, default=None, help="use only the first N training examples")
    p.add_argument("--test-size", type=positive_int, default=None, help="score only the first N test examples")
    p.add_argument("--sequential-seeds", action="store_true",
                   help="train the seeds one after another (per-model epoch times, 1/K of the memory) instead "
                        "of vmapped in one compiled call")
    p.add_argument("--stream", action="store_true",
                   help="stream shuffled training batches from the host instead of holding the training set on "
                        "the device (for sets larger than its memory; every seed sees the same batches)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="compute dtype of training (bf16: parameters and optimizer state stay float32)")
    if optimizer is not None:
        p.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer, help="optimizer")
    if lr is not None:
        p.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    if examples is not None:
        p.add_control("--examples", type=positive_int, default=examples, help="test images in the figures")
    p.add_control("--epochs", type=positive_int, default=epochs, help="epochs per run")
    p.add_control("--data-dir", default=None,
                  help="folder of prepared datasets or of a real dataset's original files (MNIST's four "
                       ".gz, the CIFAR python tarball), prepared there once (default: ~/tensorflow_datasets)")
    p.add_control("--out", type=Path, default=None, help=f"run folder (default: runs/{study}/<dataset>)")
    p.add_control("--no-progress", action="store_true", help="no progress bars")
    p.add_control("--execution", default=None,
                  help="convolution formulation / epoch driver, e.g. xla/unroll8 (default: $JAXCV_EXECUTION, else "
                       "auto: measured once per model and cached); it changes speed, not results")
    return p


class Study:
    """A study's run folder: the options that define it, its runs (trained, checkpointed,
    logged) and the files it writes.  ``argv`` defaults to the command line."""

    def __init__(self, name: str, parser: StudyParser, argv: Sequence[str] | None = None):
        self.name, self.args = name, parser.parse_args(argv)
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.args.dataset)
        self.out = Path(self.args.out or Path("runs") / name / slug)
        self.config = {"study": name, **parser.identity(self.args)}
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_resumable({k: parser.get_default(k) for k in self.config})
        self._write_json("config.json", self.config)
        self.histories: dict[str, dict[str, History]] = {}

    def _check_resumable(self, defaults: Mapping[str, Any]) -> None:
        """Refuse a folder holding checkpoints of runs defined by other options (an option its
        config.json does not name, one added since, counts as at its default)."""
        path = self.out / "config.json"
        if not (self.out / "checkpoints").exists() or not path.exists():
            return
        old = json.loads(path.read_text())
        if changed := sorted(k for k in self.config if old.get(k, defaults[k]) != self.config[k]):
            raise UsageError(f"{self.out} holds checkpoints of a run with other settings "
                             f"({', '.join(changed)}); pass another --out or delete that folder")

    def _write_json(self, name: str, obj: Any) -> Path:
        path = self.out / name
        path.write_text(json.dumps(obj, indent=1))
        return path

    def load_data(self, dataset: str | None = None) -> tuple[Arrays, Arrays, int]:
        """The train split, test split and class count of ``dataset`` (default: ``--dataset``),
        the splits cut to ``--train-size`` and ``--test-size``."""
        a = self.args
        dataset = dataset or a.dataset
        train = jdata.load_split(dataset, "train", a.data_dir)
        test = jdata.load_split(dataset, "test", a.data_dir)
        return _first(train, a.train_size), _first(test, a.test_size), jdata.num_classes(dataset, a.data_dir)

    def run(self, variant: str, model: nn.Module, train: Arrays, val: Arrays | None, *,
            seeds: int | None = None, **fit_options: Any) -> list[FitResult]:
        """Train ``model`` as ``variant`` once per seed (checkpointed, resumable); record its
        histories."""
        return self.sweep(variant, model, train, val, {}, seeds=seeds, **fit_options)[variant]

    def sweep(self, name: str, model: nn.Module, train: Arrays, val: Arrays | None,
              grid: Mapping[str, Sequence[float]], *, seeds: int | None = None,
              **fit_options: Any) -> dict[str, list[FitResult]]:
        """Train every setting of ``grid`` (``{"dropout_rate": [0.2, 0.5]}``: values of model
        fields or optimizer hyper-parameters, zipped) once per seed (``--seeds``, or
        ``seeds``), all as one ``fit_many`` call; record each setting as the variant
        ``name[dropout_rate=0.2]``.  An empty grid is the one variant ``name``.
        ``fit_options`` go to ``fit_many`` and may override ``epochs`` and ``batch_size``."""
        settings = [dict(zip(grid, values)) for values in zip(*grid.values())] if grid else [{}]
        variants = [f"{name}[{', '.join(f'{k}={v:g}' for k, v in s.items())}]" if s else name for s in settings]
        seeds = list(range(self.args.seeds if seeds is None else seeds))
        options = {"epochs": self.args.epochs, "batch_size": self.args.batch_size, "precision": self.args.precision,
                   "execution": self.args.execution, "progress": not self.args.no_progress, **fit_options}
        if self.args.stream:
            train = host_batches(train, options["batch_size"])
        runs = [(variant, setting, seed) for variant, setting in zip(variants, settings) for seed in seeds]
        if self.args.sequential_seeds:
            results = [r for run in runs for r in self._fit(model, train, val, [run], **options)]
        else:
            results = self._fit(model, train, val, runs, checkpoint_name=name, **options)
        out = {}
        for i, variant in enumerate(variants):
            out[variant] = results[i * len(seeds):(i + 1) * len(seeds)]
            self.histories[variant] = {str(seed): r.history for seed, r in zip(seeds, out[variant])}
        self._write_json("history.json", self.histories)
        return out

    def _fit(self, model: nn.Module, train: Arrays | BatchStream, val: Arrays | None, runs: list[tuple[str, dict, int]],
             checkpoint_name: str | None = None, **options: Any) -> list[FitResult]:
        """Train ``runs`` (variant, grid setting, seed) as one ``fit_many`` call, checkpointed
        under ``checkpoints/<checkpoint_name>`` (a lone run: ``<variant>/seed<k>``), logged for
        TensorBoard under ``tensorboard/<variant>/seed<k>``."""
        names = [f"{variant}/seed{seed}" for variant, _, seed in runs]
        desc = checkpoint_name or names[0]
        hparams = {k: [setting[k] for _, setting, _ in runs] for k in runs[0][1]}
        with TensorBoardLog(self.out / "tensorboard", names) as log:
            results = fit_many(model, train, val, seeds=[seed for *_, seed in runs], hparams=hparams, desc=desc,
                               checkpoint_dir=self.out / "checkpoints" / desc, on_epoch=log, **options)
        if results[0].execution is not None:  # how they trained: config.json's "executions"
            self.config.setdefault("executions", {})[desc] = results[0].execution
            self._write_json("config.json", self.config)
        return results

    def figure(self, name: str) -> Path:
        return self.out / f"{name}.png"

    def write_summary(self, text: str) -> Path:
        """Write ``summary.md`` and say where the run folder is."""
        path = self.out / "summary.md"
        path.write_text(text.rstrip() + "\n")
        print(f"wrote {self.out}")
        return path


def _first(data: Arrays, n: int | None) -> Arrays:
    """The first ``n`` examples of ``data`` (all for ``None``)."""
    return {k: v[:n] for k, v in data.items()}


def enable_compilation_cache() -> None:
    """Keep compiled programs on disk, so that a rerun (a resumed or extended study) skips
    compiling: in ``$JAX_COMPILATION_CACHE_DIR`` if set, else ``~/.cache/jaxcv/xla``
    (``JAX_ENABLE_COMPILATION_CACHE=false`` turns it off)."""
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(Path.home() / ".cache" / "jaxcv" / "xla"))


def main(run: Callable[[], None]) -> None:
    """Run a study's ``run()`` from the command line: a ``UsageError`` (something the person
    running it can fix) becomes one line and exit code 2, an interrupt a hint to resume (exit
    130); any other exception is a bug and keeps its traceback."""
    enable_compilation_cache()
    maybe_initialize_distributed()
    try:
        run()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last finished epoch",
              file=sys.stderr)
        raise SystemExit(130) from None
