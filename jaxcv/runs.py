"""A study's run folder read back: the runs it holds and any run's variables at any saved epoch,
to look inside a trained model (``jaxcv.inspection``) without training it again.

A study checkpoints each ``fit_many`` group under ``<out>/checkpoints/<name>`` (one orbax step
per epoch): the K models of the group stacked on a leading axis, in the order of
``history.json``'s variants (``name``, or ``name[setting]`` of a sweep) and, within each, its
seeds; with ``--sequential-seeds``, each run alone under ``<variant>/seed<k>``.  A run folder
names its study and dataset (``config.json``) but not the model class its study built in code,
so the reader names the model, and ``check_model`` refuses variables of another one.

The inspecting studies (``experiments/filters_activations.py`` ...) take ``--from RUN_DIR``
(``add_source_options``); without it they train the model first, into their own run folder,
and read it back the same way (``inspected_run``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import numpy as np

from jaxcv import experiment
from jaxcv.errors import UsageError
from jaxcv.files import read_json
from jaxcv.models import get_model
from jaxcv.train import Arrays, make_optimizer
from jaxcv.train.checkpoint import Checkpointer
from jaxcv.train.state import refusing_empty_inputs


@dataclasses.dataclass(frozen=True)
class RestoredRun:
    """One model of a run folder at one saved epoch: its ``variables`` (``params`` and, if it
    has any, ``batch_stats``), which ``epoch`` they are of, every epoch saved, and the run."""

    variables: dict[str, Any]
    epoch: int
    epochs: list[int]
    variant: str
    seed: int
    run_dir: Path


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """The options a run folder's study ran with (its ``config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a study's run folder (it has no config.json); "
                         "pass the --out folder of a study that finished")
    return read_json(path)


def _histories(run_dir: Path) -> dict[str, dict[str, Any]]:
    path = run_dir / "history.json"
    if not path.is_file():
        raise UsageError(f"{run_dir} holds no finished runs (no history.json); rerun its study to the end first")
    return read_json(path)


def _checkpoint_of(run_dir: Path, histories: Mapping[str, Mapping[str, Any]], variant: str,
                   seed: int) -> tuple[Path, int, int]:
    """The checkpoint folder holding ``variant``'s ``seed``, the run's index in its stacked
    group and the size of the group."""
    alone = run_dir / "checkpoints" / variant / f"seed{seed}"
    if alone.is_dir():
        return alone, 0, 1
    group = variant.split("[", 1)[0]
    members = [(v, s) for v in histories if v == group or v.startswith(group + "[") for s in histories[v]]
    return run_dir / "checkpoints" / group, members.index((variant, str(seed))), len(members)


def load_run(run_dir: str | Path, variant: str | None = None, seed: int = 0, epoch: int | None = None
             ) -> RestoredRun:
    """The variables of ``variant`` (default: the folder's first) trained from ``seed`` as
    saved after ``epoch`` (default: the last saved), read from ``run_dir``'s checkpoints.
    Only reads: nothing in the folder changes."""
    run_dir = Path(run_dir)
    run_config(run_dir)
    histories = _histories(run_dir)
    if variant is None:
        variant = next(iter(histories), None)
    if variant not in histories:
        raise UsageError(f"{run_dir} holds no variant {variant!r}; its variants are {', '.join(histories) or 'none'}")
    if str(seed) not in histories[variant]:
        raise UsageError(f"{run_dir} holds no seed {seed} of {variant!r}; its seeds are "
                         f"{', '.join(histories[variant])}")
    directory, index, group_size = _checkpoint_of(run_dir, histories, variant, seed)
    if not directory.is_dir():
        raise UsageError(f"{run_dir} holds no checkpoints of {variant!r} (no {directory}); rerun its study")
    ckpt = Checkpointer(directory)
    try:
        saved = ckpt.epochs()
        if not saved:
            raise UsageError(f"{directory} holds no saved epoch; rerun its study")
        epoch = saved[-1] if epoch is None else epoch
        if epoch not in saved:
            raise UsageError(f"epoch {epoch} of {variant!r} was not saved in {run_dir}; the saved epochs are "
                             f"{', '.join(map(str, saved))}")
        state, meta = ckpt.restore(epoch, None)  # as stored: no optimizer needed
    finally:
        ckpt.close()
    if len(meta["histories"]) != group_size:
        raise UsageError(f"{directory} holds {len(meta['histories'])} models where {run_dir}/history.json lists "
                         f"{group_size}; the folder mixes two runs: rerun its study into a fresh --out")
    variables = {"params": state["params"]}
    if state.get("batch_stats"):
        variables["batch_stats"] = state["batch_stats"]
    variables = jax.tree.map(lambda a: jax.numpy.asarray(a[index]), variables)
    return RestoredRun(variables, epoch, saved, variant, seed, run_dir)


def check_model(model: nn.Module, variables: Mapping[str, Any], images: np.ndarray, run_dir: str | Path) -> None:
    """A ``UsageError`` unless ``variables`` (from ``run_dir``) are ``model``'s for ``images``:
    the same layers with the same shapes."""
    def shapes(tree: Any) -> dict[str, tuple[int, ...]]:
        return {jax.tree_util.keystr(path): tuple(leaf.shape)
                for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}

    sample = jax.ShapeDtypeStruct((1, *images.shape[1:]), np.float32)
    with refusing_empty_inputs(model, sample.shape):
        expected = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), sample)
    want, have = shapes({k: expected[k] for k in variables if k in expected}), shapes(variables)
    if want != have or set(variables) != set(expected):
        differ = ", ".join(sorted(k for k in want.keys() | have.keys() if want.get(k) != have.get(k))[:3])
        raise UsageError(f"{run_dir} holds another model than {type(model).__name__} for "
                         f"{'x'.join(map(str, images.shape[1:]))} images (they differ in {differ or 'collections'}); "
                         "pass the --model that trained it")


def add_source_options(parser: experiment.StudyParser, *, seed_option: str = "--seed",
                       trains: bool = True) -> None:
    """The options by which an inspecting study names the model it looks at: a run of an
    earlier study (``--from``) or, if the study ``trains``, the model to train here
    (``--model``), both defining the study's run folder, and which of the runs and epochs to
    look at (which do not).  The seed's option is ``seed_option`` (a study whose ``--seed``
    means something else names another), read back as ``args.run_seed``."""
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="inspect a model an earlier study trained (its run folder, read only)"
                             + (" instead of training one here first" if trains else "")
                             + "; its dataset is the one that run used")
    parser.add_argument("--model", default=None,
                        help=("the registered model trained here, or " if trains else "")
                             + "the one that trained the --from run (default: chosen by dataset)")
    parser.add_control("--variant", default=None, help="with --from: which of its variants (default: its first)")
    parser.add_control(seed_option, dest="run_seed", type=int, default=0, help="which seed's model")
    parser.add_control("--epoch", type=experiment.positive_int, default=None,
                       help="the saved epoch to inspect (default: the last)")


def restore_source(args: argparse.Namespace, model: nn.Module, images: np.ndarray) -> RestoredRun:
    """The ``--from`` run's variables chosen by ``add_source_options``' options, checked to be
    ``model``'s for ``images`` (a batch of the dataset's)."""
    restored = load_run(args.source, args.variant, args.run_seed, args.epoch)
    check_model(model, restored.variables, images, args.source)
    return restored


def source_dataset(study: experiment.Study) -> str:
    """The dataset to inspect on: the ``--from`` run's, or else ``--dataset``."""
    if study.args.source is None:
        return study.args.dataset
    return run_config(study.args.source).get("dataset", study.args.dataset)


def default_model(dataset: str, image_shape: tuple[int, ...]) -> str:
    """The registered model an inspecting study uses for ``dataset`` unless told: report 004's
    deeper CNN for the 72x72 shapes, report 000's MNIST CNN for other grey images and its
    CIFAR CNN for colour ones."""
    if dataset in ("shapes/easy", "shapes/hard"):
        return "shapes_deep_cnn"
    return "mnist_cnn" if image_shape[-1] == 1 else "cifar_cnn"


class Inspected(NamedTuple):
    """What an inspecting study looks at: the dataset and its splits, the model, its run."""

    dataset: str
    train: Arrays
    test: Arrays
    model: nn.Module
    run: RestoredRun


def inspected_run(study: experiment.Study, check: Callable[[nn.Module, Arrays], None] | None = None) -> Inspected:
    """The data and model to inspect (``--model``, or ``default_model``), with its variables at
    ``--epoch`` (default: the last saved): the ``--from`` run's, checked to be that model's;
    or else the model trained here first (``--epochs``, ``--seeds``, ``--optimizer``,
    ``--lr``) as the variant named after it, read back from the study's own checkpoints.
    ``check(model, test)`` refuses the study's own options (a layer, an image index) once the
    model and data are known, before anything trains or loads: a typo costs no epochs."""
    args = study.args
    dataset = source_dataset(study)
    train, test, num_classes = study.load_data(dataset)
    name = args.model or default_model(dataset, test["image"].shape)
    model = get_model(name, num_classes=num_classes)
    if check is not None:
        check(model, test)
    if args.source is None:
        print(f"no --from run given: training {name} on {dataset} for {args.epochs} epoch(s) first")
        study.run(name, model, train, test, optimizer=make_optimizer(args.optimizer, args.lr))
        return Inspected(dataset, train, test, model, load_run(study.out, name, args.run_seed, args.epoch))
    return Inspected(dataset, train, test, model, restore_source(args, model, test["image"][:1]))
