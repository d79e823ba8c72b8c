"""What every study script shares: its command line, its run folder, its runs and outputs.

A study writes ``<out>/config.json`` (the options that define its runs, once it trains or
summarises, and under ``executions`` the convolution formulation and epoch driver each group of
runs trained with; the options are kept as well in ``<out>/checkpoints/identity.json`` once it
trains), ``<out>/history.json`` (per variant and seed, a list of per-epoch records; see
``jaxcv.files`` for NaN),
``<out>/tensorboard/<variant>/seed<k>/`` (TensorBoard event files, written as the runs
train), PNG figures and ``<out>/summary.md``.  A variant's seeds train together, vmapped in
one compiled function (``fit_many``), unless ``--sequential-seeds``; every run is
checkpointed under ``<out>/checkpoints``: rerunning an interrupted command resumes it.  One
process at a time may use a run folder (``<out>/.lock``).

Launched as several processes (``jax.distributed``), every process runs the whole script on
the same options and data (checked) and takes part in training and checkpointing; only
process 0 writes the other files of the run folder and prints progress.
"""

from __future__ import annotations

import argparse
import fcntl
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np

from jaxcv import data as jdata
from jaxcv.data.smallsets import as_input, per_class
from jaxcv.errors import UsageError, one_line_usage_errors
from jaxcv.files import read_json, replacing, to_json, write_json, write_text
from jaxcv.train import (OPTIMIZERS, Arrays, BatchStream, FitResult, History, NonFiniteLossError, TensorBoardLog,
                         fit_many, host_batches, maybe_initialize_distributed, parallel)
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


def positive_ints(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated integers >= 1."""
    return tuple(positive_int(t) for t in text.split(","))


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {value}")
    return value


def dataset_name(text: str) -> str:
    """argparse type: a non-empty dataset name."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a dataset name, got an empty one")
    return text


def folder(text: str) -> str:
    """argparse type: a folder's path, which may not exist yet but is not a file."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return text


def output_file(text: str) -> Path:
    """argparse type: the path of a file to write, not a folder."""
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    return Path(text)


def program(text: str) -> str:
    """argparse type: a program that can be run (a path, or a name on ``$PATH``)."""
    if shutil.which(text) is None:
        raise argparse.ArgumentTypeError(f"{text}: no program that can be run")
    return text


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` keeps a study's description as written and shows each option's default
    (none for flags and options whose absence is their default), a list of values as it is
    typed (``256,128``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        if isinstance(action.default, (list, tuple)):
            return f"{action.help} (default: {','.join(map(str, action.default))})"
        return super()._get_help_string(action)


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
           optimizer: str | None = None, lr: float | None = None, examples: int | None = None,
           train_per_class: int | None = None) -> StudyParser:
    """The options every study takes, with the study's defaults; ``--optimizer``, ``--lr``,
    ``--examples`` (test images in its figures) and ``--train-per-class`` (with
    ``--image-size``: the transfer studies' small sets) when it gives their defaults."""
    datasets = ", ".join((*jdata.CATALOGUED, *jdata.EMBEDDED))
    p = base_parser(study, description, f"datasets: {datasets} (embedded ones are generated offline; any TFDS "
                    "image classification dataset name also works). Rerun the same command to resume an "
                    "interrupted run.", out=f"runs/{study}/<dataset>")
    p.add_argument("--dataset", type=dataset_name, default=dataset, help="TFDS dataset name")
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
    if train_per_class is not None:
        p.add_argument("--train-per-class", type=positive_int, default=train_per_class,
                       help="the small training set: the first N training images of each class")
        p.add_argument("--image-size", type=positive_int, default=None,
                       help="resize every image to N x N (three channels) for the network (default: the dataset's size)")
    if examples is not None:
        p.add_control("--examples", type=positive_int, default=examples, help="test images in the figures")
    p.add_control("--epochs", type=positive_int, default=epochs, help="epochs per run")
    p.add_control("--execution", default=None,
                  help="convolution formulation / epoch driver, e.g. xla/unroll8, or auto: measured once per model "
                       "and cached (default: $JAXCV_EXECUTION, else default: the fast formulation for this backend "
                       "and jax version in a scanned epoch, README 'Executions'); it changes speed, not results")
    p.add_control("--data-dir", type=folder, default=None,
                  help="folder of prepared datasets or of a real dataset's original files (MNIST's four "
                       ".gz, the CIFAR python tarball), prepared there once (default: ~/tensorflow_datasets)")
    return p


def base_parser(study: str, description: str, epilog: str = "", *, out: str | None = None) -> StudyParser:
    """The options of every study, trained or not: ``--out`` (default ``out``, else
    ``runs/<study>``) and ``--no-progress``."""
    p = StudyParser(prog=f"{study}.py", description=description, epilog=textwrap.fill(epilog, 90) or None)
    p.add_control("--out", type=Path, default=None, help=f"run folder (default: {out or f'runs/{study}'})")
    p.add_control("--no-progress", action="store_true", help="no progress bars")
    return p


class Study:
    """A study's run folder: the options that define it, its runs (trained, checkpointed,
    logged) and the files it writes.  ``argv`` defaults to the command line.

    The folder is this process's alone while it lives (a second one is refused).  A run
    whose training loss becomes non-finite fails: it is named on stderr as it stops, at the
    top of the summary, and ``write_summary`` raises ``NonFiniteLossError`` after writing.
    """

    def __init__(self, name: str, parser: StudyParser, argv: Sequence[str] | None = None):
        self.name, self.args = name, parser.parse_args(argv)
        default = Path("runs") / name
        if dataset := getattr(self.args, "dataset", None):  # a study that trains: a folder per dataset
            default = default / re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset)
        self.out = Path(self.args.out or default)
        self.config = {"study": name, **parser.identity(self.args)}
        _hold(self.out)
        self._check_resumable({k: parser.get_default(k) for k in self.config})
        parallel.check_processes_agree("the study's options", self.config)
        self.histories: dict[str, dict[str, History]] = {}
        self.failures: dict[str, str] = {}
        """``{"variant/seed<k>": what happened}`` for every run whose loss became non-finite."""
        self.executions: dict[str, dict] = {}
        """``{group: how its runs executed}`` (``FitResult.execution``), for config.json."""
        self._scratch: tempfile.TemporaryDirectory | None = None

    @property
    def identity_path(self) -> Path:
        """The options that define the runs, kept with their checkpoints."""
        return self.out / "checkpoints" / "identity.json"

    def _check_resumable(self, defaults: Mapping[str, Any]) -> None:
        """Refuse a folder holding checkpoints of runs defined by other options, or whose
        options are not recorded (an option the record does not name, one added since, counts
        as at its default; folders from before ``identity.json`` have only config.json).  A
        start that failed before its first checkpoint (the options are recorded as training
        begins) holds none: its rerun may change the options that made it fail."""
        if not _holds_checkpoints(self.out / "checkpoints"):
            return
        record = next((p for p in (self.identity_path, self.out / "config.json") if p.exists()), None)
        if record is None:
            raise UsageError(f"{self.out} holds checkpoints but no config.json saying how they were trained; "
                             "pass another --out or delete that folder")
        old = read_json(record)  # compared as JSON: a tuple option reads back as a list
        if changed := sorted(k for k in self.config if to_json(old.get(k, defaults[k])) != to_json(self.config[k])):
            raise UsageError(f"{self.out} holds checkpoints of a run with other settings "
                             f"({', '.join(changed)}); pass another --out or delete that folder")

    def load_data(self, dataset: str | None = None, *, small: bool = True) -> tuple[Arrays, Arrays, int]:
        """The train split, test split and class count of ``dataset`` (default: ``--dataset``),
        the splits cut to ``--train-size`` and ``--test-size``.  A transfer study's (one with
        ``--train-per-class``) has its training split cut to that many images per class
        (unless not ``small``), and the images of both resized to ``--image-size``, in three
        channels."""
        a = self.args
        dataset = dataset or a.dataset
        train, test = (_first(jdata.load_split(dataset, split, a.data_dir), n, dataset, split)
                       for split, n in (("train", a.train_size), ("test", a.test_size)))
        if hasattr(a, "train_per_class"):
            train = per_class(train, a.train_per_class) if small else train
            train, test = ({**s, "image": as_input(s["image"], a.image_size)} for s in (train, test))
        return train, test, jdata.num_classes(dataset, a.data_dir)

    def run(self, variant: str, model: nn.Module, train: Arrays, val: Arrays | None, *,
            seeds: int | None = None, **fit_options: Any) -> list[FitResult]:
        """Train ``model`` as ``variant`` once per seed (checkpointed, resumable); record its
        histories."""
        return self.sweep(variant, model, train, val, {}, seeds=seeds, **fit_options)[variant]

    def sweep(self, name: str, model: nn.Module, train: Arrays, val: Arrays | None,
              grid: Mapping[str, Sequence[float]], *, seeds: int | None = None, may_diverge: bool = False,
              **fit_options: Any) -> dict[str, list[FitResult]]:
        """Train every setting of ``grid`` (``{"dropout_rate": [0.2, 0.5]}``: values of model
        fields or optimizer hyper-parameters, zipped) once per seed (``--seeds``, or
        ``seeds``), all as one ``fit_many`` call; record each setting as the variant
        ``name[dropout_rate=0.2]``.  An empty grid is the one variant ``name``.
        ``fit_options`` go to ``fit_many`` and may override ``epochs`` and ``batch_size``.
        A run whose loss becomes non-finite fails the study, unless ``may_diverge`` (the study
        handles it: a hyper-parameter search prunes it)."""
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
            for seed, result in zip(seeds, out[variant]):
                if not may_diverge:
                    self._check_failed(f"{variant}/seed{seed}", result)
        if parallel.is_primary():
            write_json(self.out / "history.json", self.histories)
        return out

    def _check_failed(self, run: str, result: FitResult) -> None:
        if result.failed and run not in self.failures:
            last = result.history[-1]
            self.failures[run] = f"{run}: the training loss became {last['train_loss']} in epoch {last['epoch']}"
            print(f"failed: {self.failures[run]}", file=sys.stderr)

    def _fit(self, model: nn.Module, train: Arrays | BatchStream, val: Arrays | None, runs: list[tuple[str, dict, int]],
             checkpoint_name: str | None = None, **options: Any) -> list[FitResult]:
        """Train ``runs`` (variant, grid setting, seed) as one ``fit_many`` call, checkpointed
        under ``checkpoints/<checkpoint_name>`` (a lone run: ``<variant>/seed<k>``), logged for
        TensorBoard under ``tensorboard/<variant>/seed<k>``."""
        names = [f"{variant}/seed{seed}" for variant, _, seed in runs]
        desc = checkpoint_name or names[0]
        hparams = {k: [setting[k] for _, setting, _ in runs] for k in runs[0][1]}
        self._write_config(with_checkpoints=True)
        with TensorBoardLog(self.out / "tensorboard", names) as log:
            results = fit_many(model, train, val, seeds=[seed for *_, seed in runs], hparams=hparams, desc=desc,
                               checkpoint_dir=self.out / "checkpoints" / desc,
                               on_epoch=log if parallel.is_primary() else None, **options)
        if results[0].execution is not None:  # how they trained: config.json's "executions"
            self.executions[desc] = results[0].execution
            self._write_config(with_checkpoints=False)
        return results

    def _write_config(self, *, with_checkpoints: bool) -> None:
        """Record the options that define the runs in config.json (with how each group of runs
        executed), and with the checkpoints if asked; not at start, so that a start that fails
        leaves no record of runs never made."""
        if not parallel.is_primary():
            return
        executions = {"executions": self.executions} if self.executions else {}
        write_json(self.out / "config.json", {**self.config, **executions})
        if with_checkpoints:
            self.identity_path.parent.mkdir(exist_ok=True)
            write_json(self.identity_path, self.config)

    def resumable(self, name: str, compute: Callable[[], Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """``compute()`` (named arrays) once per run folder: kept as ``checkpoints/<name>.npz``
        with the options that made it, so a rerun after an interrupt skips it, and a rerun
        with other options is refused as for trained runs.  For results not trained in epochs
        (a synthesis study's variants); a damaged file is named and computed again."""
        path = self.out / "checkpoints" / f"{name}.npz"
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as kept:
                    return {k: kept[k] for k in kept.files}
            except (ValueError, EOFError, zipfile.BadZipFile) as e:
                print(f"{path} is damaged ({e}); computing {name} again", file=sys.stderr)
        result = {k: np.asarray(v) for k, v in compute().items()}
        self._write_config(with_checkpoints=True)
        if parallel.is_primary():
            with replacing(path) as f:
                np.savez(f, **result)
        return result

    def write_results(self, name: str, obj: Any) -> Path:
        """A study's numbers as ``<out>/<name>.json`` (atomic, strict JSON; process 0 only)."""
        path = self.out / f"{name}.json"
        if parallel.is_primary():
            write_json(path, obj)
        return path

    def figure(self, name: str) -> Path:
        """Where to draw the figure ``name``: in the run folder on process 0, in a scratch
        folder thrown away on the other processes of a multi-process job."""
        if parallel.is_primary():
            return self.out / f"{name}.png"
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="jaxcv-figures-")
        return Path(self._scratch.name) / f"{name}.png"

    def write_summary(self, text: str) -> Path:
        """Write ``summary.md`` (failed runs named at its top) and say where the run folder
        is (process 0 only); then, if a run failed, raise ``NonFiniteLossError`` naming them."""
        failed = list(self.failures.values())
        if failed:
            text = ("**Failed:** the training loss of these runs became non-finite; their numbers are not "
                    "results.\n\n" + "".join(f"- {f}\n" for f in failed) + "\n" + text)
        self._write_config(with_checkpoints=False)
        path = self.out / "summary.md"
        if parallel.is_primary():
            write_text(path, text.rstrip() + "\n")
            print(f"wrote {self.out}")
        if failed:
            raise NonFiniteLossError(f"{len(failed)} run(s) failed ({'; '.join(failed)}); lower the learning "
                                     f"rate or check the inputs (see {path})")
        return path


_HELD: dict[Path, int] = {}
"""The run folders this process holds, with their lock file's descriptor: held until it exits."""


def _hold(folder: Path) -> None:
    """Create ``folder`` and hold it for this process (an exclusive ``flock`` on
    ``folder/.lock``, holding its pid), released by the OS when the process ends; a
    ``UsageError`` if it cannot be created or another process holds it.  In a multi-process
    run, process 0 holds it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if jax.process_index() != 0 or folder.resolve() in _HELD:
            return
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UsageError(f"cannot use {folder} as the run folder ({e.strerror}); pass another --out") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UsageError(f"{folder} is in use by process {holder} (it holds {folder / '.lock'}); wait for it "
                         "to end or pass another --out") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[folder.resolve()] = fd


def _holds_checkpoints(folder: Path) -> bool:
    """Whether any saved epoch (a numbered folder, as orbax names them) or saved result
    (``Study.resumable``'s ``.npz``) lies under ``folder``."""
    return any(p.name.isdigit() and p.is_dir() or p.suffix == ".npz" for p in folder.rglob("*"))


def _first(data: Arrays, n: int | None, dataset: str, split: str) -> Arrays:
    """The first ``n`` examples of ``data`` (all for ``None``); more than it has are refused,
    not cut silently to what there is (the run's config would record a size it never had)."""
    have = len(next(iter(data.values())))
    if n is not None and n > have:
        raise UsageError(f"--{split}-size {n:,} asks for more than the {have:,} examples of {dataset}'s {split} split")
    return {k: v[:n] for k, v in data.items()}


def enable_compilation_cache() -> None:
    """Keep compiled programs on disk, so that a rerun (a resumed or extended study) skips
    compiling: in ``$JAX_COMPILATION_CACHE_DIR`` if set, else ``~/.cache/jaxcv/xla``
    (``JAX_ENABLE_COMPILATION_CACHE=false`` turns it off)."""
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(Path.home() / ".cache" / "jaxcv" / "xla"))


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(run: Callable[[], None]) -> None:
    """Run a study's ``run()`` from the command line: a ``UsageError`` (something the person
    running it can fix) becomes one line and exit code 2, an interrupt a hint to resume (exit
    130); any other exception is a bug and keeps its traceback.  A SIGTERM (a cluster's
    scheduler pre-empting the job) stops it as a Ctrl-C does, resumable."""
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        with one_line_usage_errors():
            enable_compilation_cache()
            maybe_initialize_distributed()
            run()
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last finished epoch",
              file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
