"""``fit_many`` trains K models vmapped in one compiled function, for some epochs,
evaluating, checkpointing, logging and calling back; ``fit`` is its K = 1 case.

``_train_epochs`` is where training happens; the functions before it set it up.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from jaxcv.errors import UsageError
from jaxcv.models.layers import use_conv_impl
from jaxcv.train import autotune, members, parallel
from jaxcv.train.callbacks import Callback, History, Record
from jaxcv.train.checkpoint import Checkpointer
from jaxcv.train.epochs import Arrays, BatchStream, DeviceEpochs, StreamedEpochs, sample_input, training_epochs
from jaxcv.train.evaluation import Evaluator
from jaxcv.train.losses import LossFn, classification
from jaxcv.train.state import TrainState, create_state
from jaxcv.train.steps import Augment, compute_dtype

EpochHook = Callable[[int, Mapping[int, Record]], None]
"""``hook(epoch, records)``: after every epoch, the new record of each model that trained in
it, by model index (``TensorBoardLog`` is one)."""
WarmStart = Callable[[int, TrainState], TrainState]
"""``warm_start(seed, state) -> state``: the model of ``seed`` as it starts training."""


class NonFiniteLossError(UsageError):
    """The training loss of a model trained alone became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How ``fit`` and ``fit_many`` train: their keyword options, in one place."""

    optimizer: optax.GradientTransformation
    epochs: int
    batch_size: int
    """Global batch, split over the mesh's devices (a stream's batches must have this size)."""
    loss_fn: LossFn = classification
    augment: Augment | None = None
    """A random transform of every training batch, inside the compiled step."""
    eval_batch_size: int | None = None
    """Default: ``batch_size`` or 256, whichever is larger, a multiple of the devices."""
    mesh: Mesh | None = None
    """Devices to split batches over; default: all of them."""
    callbacks: Sequence[Callback] = ()
    checkpoint_dir: str | Path | None = None
    """Save every epoch there; a rerun resumes from the newest checkpoint."""
    on_epoch: EpochHook | None = None
    warm_start: WarmStart | None = None
    """Turns each freshly initialised model into the one to train (pretrained layers, a
    new head, frozen layers: ``jaxcv.transfer.warm_start``)."""
    progress: bool = True
    desc: str = "fit"
    execution: str | None = None
    """Convolution formulation and epoch driver (``jaxcv.train.autotune``): ``"auto"``
    (measured once, cached), or pinned, e.g. ``"xla/unroll8"``; default ``$JAXCV_EXECUTION``,
    else ``"default"`` (``autotune.default_execution``): the devices' fast formulation
    (``layers.conv_impl_for``: by backend and jax version), scanned epochs (one step per batch
    when streamed).  It changes speed, not results (beyond float rounding)."""
    precision: str = "float32"
    """Compute dtype of training steps: ``"float32"`` or ``"bf16"`` (parameters and optimizer
    state stay float32; evaluation is float32)."""

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"epochs must be >= 1, got {self.epochs}")
        compute_dtype(self.precision)
        autotune.parse_setting(autotune.setting(self.execution))


@dataclasses.dataclass
class FitResult:
    state: TrainState
    history: History
    compile_seconds: float
    """Seconds spent compiling the epoch (or step) and evaluation functions, not in any epoch
    (when it last trained: a rerun of a finished run reports its checkpoint's; NaN if unknown)."""
    execution: dict[str, Any] | None = None
    """How it last trained (``autotune.Choice.record()``); ``None`` if a rerun had nothing left to train."""

    @property
    def failed(self) -> bool:
        """Its training loss became non-finite (it stopped training there)."""
        return bool(self.history) and not math.isfinite(self.history[-1]["train_loss"])


@dataclasses.dataclass
class _Models:
    """K models trained together: their stacked state and epoch keys, their histories, and
    which of them still train (the others stopped early or diverged)."""

    state: TrainState
    rngs: jax.Array
    histories: list[History]
    active: list[bool]
    compile_seconds: float = math.nan
    execution: dict[str, Any] | None = None

    def results(self) -> list[FitResult]:
        return [FitResult(members.member(self.state, i), h, self.compile_seconds, self.execution)
                for i, h in enumerate(self.histories)]


def fit(model: nn.Module, train: Arrays | BatchStream, val: Arrays | None, *, seed: int = 0,
        hparams: Mapping[str, float] | None = None, **options: Any) -> FitResult:
    """Train ``model``: ``fit_many`` with one seed, and ``hparams`` one value each.
    ``options`` are ``FitOptions``' fields.  A non-finite training loss raises
    ``NonFiniteLossError`` (checkpointed, a rerun raises it again without training)."""
    result, = fit_many(model, train, val, seeds=[seed], hparams={k: [v] for k, v in (hparams or {}).items()},
                       **options)
    last = result.history[-1]
    if result.failed:
        raise NonFiniteLossError(f"{options.get('desc', 'fit')}: the training loss became {last['train_loss']} in "
                                 f"epoch {last['epoch']}; lower the learning rate or check the inputs")
    return result


def fit_many(model: nn.Module, train: Arrays | BatchStream, val: Arrays | None, *, seeds: Sequence[int],
             hparams: Mapping[str, Sequence[float]] | None = None, **options: Any) -> list[FitResult]:
    """Train K = ``len(seeds)`` models at once: ``jax.vmap`` over their states and random keys
    inside one compiled epoch, data-parallel over the devices of ``mesh``.

    ``train`` is a dict of arrays (``image`` uint8 and targets), held on the device and run a
    whole epoch per compiled call, or a ``BatchStream`` of host batches.  ``val`` (arrays) is
    evaluated exactly after every epoch.  ``options`` are ``FitOptions``' fields.

    Model k starts from ``seeds[k]`` (initialisation, data order and dropout masks) with
    ``hparams[name][k]`` for each ``name``: a field of ``model`` (``dropout_rate``) or a
    hyper-parameter of the optimizer's state (``learning_rate``, ``weight_decay``,
    ``momentum`` of ``make_optimizer``; any ``optax.inject_hyperparams``).  Callbacks act per
    model; a model that stops early, or whose loss becomes non-finite (its last record shows
    it), keeps its state while the others go on.  Returns one result per model: its state
    and history, one record per epoch, whose ``epoch_seconds`` is the time of the whole
    K-model epoch (compile time kept out).
    """
    opts = FitOptions(**options)
    hparams = _checked_hparams(seeds, hparams)
    mesh = parallel.data_mesh() if opts.mesh is None else opts.mesh
    parallel.check_batch_size(opts.batch_size, mesh)
    eval_batch_size = opts.eval_batch_size or max(opts.batch_size, 256 // mesh.size * mesh.size)
    parallel.check_batch_size(eval_batch_size, mesh)
    parallel.check_processes_agree("fit_many's data and options", train if isinstance(train, dict) else None, val,
                                   seeds, hparams, opts.epochs, opts.batch_size, eval_batch_size, opts.desc,
                                   opts.precision, autotune.setting(opts.execution))
    epochs = training_epochs(train, loss_fn=opts.loss_fn, batch_size=opts.batch_size, augment=opts.augment, mesh=mesh,
                             precision=opts.precision)
    evaluator = None if val is None else Evaluator(val, loss_fn=opts.loss_fn, batch_size=eval_batch_size, mesh=mesh)
    models = _init_models(model, sample_input(epochs), opts.optimizer, seeds, hparams, mesh, opts.warm_start)
    ckpt = Checkpointer(opts.checkpoint_dir) if opts.checkpoint_dir is not None else None
    try:
        models = _resumed(models, ckpt, opts.epochs)
        if max(len(h) for h in models.histories) < opts.epochs and any(models.active):
            active = jnp.asarray(models.active)
            choice = autotune.resolve(opts.execution, epochs, models.state, models.rngs, active,
                                      autotune.signature(models.state, epochs, models.rngs, mesh), opts.progress)
            epochs = epochs.with_driver(choice.execution.driver)
            with use_conv_impl(choice.execution.conv):  # read as the programs are traced
                models.compile_seconds = _compile(epochs, evaluator, models)
            models.execution = choice.record()
            _train_epochs(models, epochs, evaluator, ckpt, opts, mesh)
    finally:
        if ckpt is not None:
            ckpt.close()
    return models.results()


def _checked_hparams(seeds: Sequence[int], hparams: Mapping[str, Sequence[float]] | None) -> dict:
    if not seeds:
        raise UsageError("fit_many needs at least one seed")
    hparams = dict(hparams or {})
    for name, values in hparams.items():
        if len(values) != len(seeds):
            raise UsageError(f"hparams[{name!r}] has {len(values)} values for {len(seeds)} seeds")
    return hparams


def _init_models(model: nn.Module, sample: jax.Array, optimizer: optax.GradientTransformation,
                 seeds: Sequence[int], hparams: Mapping[str, Sequence[float]], mesh: Mesh,
                 warm_start: WarmStart | None = None) -> _Models:
    """K fresh models, model k initialised from ``seeds[k]`` (then ``warm_start``) with its
    ``hparams``, stacked and replicated over ``mesh``."""
    init = jax.jit(create_state, static_argnums=(0, 1))  # one program for the K (the eager values, bit for bit)
    states, rngs = [], []
    for i, seed in enumerate(seeds):
        init_rng, epoch_rng = jax.random.split(jax.random.key(seed))
        state = init(model, optimizer, sample, init_rng)
        if warm_start is not None:
            state = warm_start(seed, state)
        states.append(members.with_hparams(state, {name: v[i] for name, v in hparams.items()}))
        rngs.append(epoch_rng)
    return _Models(parallel.put_replicated(members.stack(states), mesh), jnp.stack(rngs),
                   [[] for _ in seeds], [True] * len(seeds))


def _resumed(models: _Models, ckpt: Checkpointer | None, epochs: int) -> _Models:
    """``models`` as the newest checkpoint left them, if there is one; refused if they trained
    for more than ``epochs`` (their numbers are not those of ``epochs`` epochs)."""
    restored = ckpt.restore_latest(models.state) if ckpt is not None else None
    if restored is None:
        return models
    state, meta = restored
    if (done := max(len(h) for h in meta["histories"])) > epochs:
        raise UsageError(f"{ckpt.directory} holds runs trained for {done} epochs, more than the {epochs} asked; "
                         f"ask for at least {done} epochs or use another folder")
    return dataclasses.replace(models, state=state, histories=meta["histories"], active=meta["active"],
                               compile_seconds=meta.get("compile_seconds", math.nan))


def _compile(epochs: DeviceEpochs | StreamedEpochs, evaluator: Evaluator | None, models: _Models) -> float:
    """Compile the epoch and evaluation functions ahead of time; the seconds it took."""
    start = time.perf_counter()
    epochs.compile(models.state, models.rngs, jnp.asarray(models.active))
    if evaluator is not None:
        evaluator.compile(models.state)
    return time.perf_counter() - start


def _train_epochs(models: _Models, epochs: DeviceEpochs | StreamedEpochs, evaluator: Evaluator | None,
                  ckpt: Checkpointer | None, opts: FitOptions, mesh: Mesh) -> None:
    """Where training happens: per epoch, train every active model, evaluate, record, call
    back, report and checkpoint, until ``opts.epochs`` or no model is left active."""
    k, done = len(models.histories), max(len(h) for h in models.histories)
    bar = tqdm(range(done, opts.epochs), desc=opts.desc if k == 1 else f"{opts.desc} ({k} models)",
               disable=not opts.progress or not parallel.is_primary(), unit="epoch", initial=done, total=opts.epochs)
    with bar:
        for epoch in bar:
            if not any(models.active):
                break
            start = time.perf_counter()
            models.state, metrics = epochs(models.state, members.fold_in(models.rngs, epoch),
                                           jnp.asarray(models.active), epoch)
            train = members.split_metrics(jax.device_get(metrics), "train_")
            seconds = time.perf_counter() - start
            start = time.perf_counter()
            val = evaluator(models.state) if evaluator is not None else [{}] * k
            shared = {"epoch_seconds": seconds, "models": k,
                      **({"eval_seconds": time.perf_counter() - start} if evaluator is not None else {})}
            rates = members.learning_rates(models.state)
            records = {i: {"epoch": epoch + 1, **train[i], **val[i], **shared, **rates[i]}
                       for i in range(k) if models.active[i]}
            for i, record in records.items():
                _end_of_epoch(models, i, record, opts.callbacks)
            bar.set_postfix(_progress(records.values()))
            if opts.on_epoch is not None:
                opts.on_epoch(epoch + 1, records)
            models.state = parallel.put_replicated(models.state, mesh)
            if ckpt is not None:
                ckpt.save(epoch + 1, models.state, {"histories": models.histories, "active": models.active,
                                                    "compile_seconds": models.compile_seconds})


def _end_of_epoch(models: _Models, i: int, record: Record, callbacks: Sequence[Callback]) -> None:
    """Append model ``i``'s record; a non-finite loss stops the model, and each callback may
    change its state (a learning-rate scale) or stop it."""
    models.histories[i].append(record)
    if not math.isfinite(record["train_loss"]):
        models.active[i] = False
        return
    member = members.member(models.state, i) if callbacks else None
    for callback in callbacks:
        updated, halt = callback(models.histories[i], member)
        if updated is not member:
            member = updated
            models.state = members.set_member(models.state, i, updated)
        models.active[i] = models.active[i] and not halt


def _progress(records: Sequence[Record]) -> dict[str, str]:
    """The progress bar's numbers: this epoch's losses and accuracies, averaged over models."""
    records = list(records)
    keys = [key for key in records[0] if key.endswith(("loss", "accuracy"))] if records else []
    return {key: f"{np.mean([r[key] for r in records]):.4g}" for key in keys}
