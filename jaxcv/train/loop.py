"""``fit``: train a model for some epochs, evaluating, checkpointing and calling back."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from jaxcv.train import parallel
from jaxcv.train.callbacks import Callback, History
from jaxcv.train.checkpoint import Checkpointer
from jaxcv.train.losses import LossFn, classification
from jaxcv.train.state import TrainState, create_state
from jaxcv.train.steps import evaluate, to_float, train_epoch, train_step

Arrays = dict[str, np.ndarray]
BatchStream = Callable[[int], Iterable[Arrays]]
"""``epoch -> batches``: a training set streamed from the host instead of held on the device."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass
class FitResult:
    state: TrainState
    history: History
    compile_seconds: float
    """Seconds spent compiling the epoch (or step) and evaluation functions, not in any epoch."""


def pad_to_batches(data: Arrays, batch_size: int) -> Arrays:
    """Pad every array to a whole number of batches and add a 0/1 ``mask`` of real examples."""
    n = len(data["image"])
    pad = -n % batch_size
    out = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in data.items()}
    out["mask"] = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return out


def aot_compile(fn: Callable, *args, donate: bool = False):
    """``jax.jit(fn)`` compiled ahead of time for ``args``, donating the first if asked."""
    return jax.jit(fn, donate_argnums=0 if donate else ()).lower(*args).compile()


class _DeviceEpochs:
    """Whole epochs over a training set held on the device, one compiled call each."""

    def __init__(self, data: Arrays, loss_fn: LossFn, batch_size: int, mesh: Mesh):
        self.data = parallel.put_replicated(data, mesh)
        self.fn = functools.partial(train_epoch, loss_fn=loss_fn, batch_size=batch_size,
                                    sharding=parallel.batch_sharded(mesh))
        self.compiled = None

    def compile(self, state: TrainState, rng: jax.Array) -> None:
        self.compiled = aot_compile(self.fn, state, self.data, rng, donate=True)

    def __call__(self, state: TrainState, rng: jax.Array, epoch: int):
        return self.compiled(state, self.data, rng)


class _StreamedEpochs:
    """Epochs over host batches: one compiled step per batch, each batch split over devices."""

    def __init__(self, batches: BatchStream, loss_fn: LossFn, mesh: Mesh):
        self.batches, self.sharding = batches, parallel.batch_sharded(mesh)
        self.fn = functools.partial(train_step, loss_fn=loss_fn)
        self.compiled = None

    def compile(self, state: TrainState, rng: jax.Array) -> None:
        first = next(iter(self.batches(0)))
        spec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=self.sharding) for k, v in first.items()}
        self.compiled = aot_compile(self.fn, state, spec, rng, donate=True)

    def __call__(self, state: TrainState, rng: jax.Array, epoch: int):
        totals, steps = None, 0
        for batch in self.batches(epoch):
            state, metrics = self.compiled(state, jax.device_put(batch, self.sharding),
                                           jax.random.fold_in(rng, steps))
            totals = metrics if totals is None else jax.tree.map(jnp.add, totals, metrics)
            steps += 1
        if totals is None:
            raise ValueError(f"the training stream gave no batch in epoch {epoch}")
        return state, jax.tree.map(lambda t: t / steps, totals)


def fit(model: nn.Module, train: Arrays | BatchStream, val: Arrays | None, *,
        optimizer: optax.GradientTransformation, epochs: int, batch_size: int,
        loss_fn: LossFn = classification, seed: int = 0, eval_batch_size: int | None = None,
        mesh: Mesh | None = None, callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None, progress: bool = True,
        desc: str = "fit") -> FitResult:
    """Train ``model`` on ``train`` for ``epochs``, data-parallel over ``mesh`` (default: all devices).

    ``train`` is a dict of arrays (``image`` uint8 and targets), held on the device and run a
    whole epoch per compiled call, or a ``BatchStream`` of host batches.  ``val`` (arrays)
    is evaluated exactly after every epoch.  With ``checkpoint_dir`` every epoch is saved
    and a rerun resumes from the newest checkpoint.  Returns the state and a history of one
    record per epoch; compile time is kept out of every ``epoch_seconds``.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    mesh = parallel.data_mesh() if mesh is None else mesh
    eval_batch_size = eval_batch_size or max(batch_size, 256 // mesh.size * mesh.size)
    parallel.check_batch_size(batch_size, mesh)
    parallel.check_batch_size(eval_batch_size, mesh)

    init_rng, epoch_rng = jax.random.split(jax.random.key(seed))
    sample = train["image"][:1] if isinstance(train, dict) else next(iter(train(0)))["image"][:1]
    state = parallel.put_replicated(create_state(model, optimizer, to_float(jnp.asarray(sample)), init_rng), mesh)
    history: History = []
    ckpt = Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and (restored := ckpt.restore_latest(state)) is not None:
        state, history = restored

    run_epoch = (_DeviceEpochs(train, loss_fn, batch_size, mesh) if isinstance(train, dict)
                 else _StreamedEpochs(train, loss_fn, mesh))
    start = time.perf_counter()
    run_epoch.compile(state, epoch_rng)
    if val is not None:
        val_data = parallel.put_replicated(pad_to_batches(val, eval_batch_size), mesh)
        eval_fn = aot_compile(functools.partial(evaluate, loss_fn=loss_fn, batch_size=eval_batch_size,
                                             sharding=parallel.batch_sharded(mesh)), state, val_data)
    compile_seconds = time.perf_counter() - start

    bar = tqdm(range(len(history), epochs), desc=desc, disable=not progress, unit="epoch",
               initial=len(history), total=epochs)
    try:
        for epoch in bar:
            start = time.perf_counter()
            state, metrics = run_epoch(state, jax.random.fold_in(epoch_rng, epoch), epoch)
            record = {"epoch": epoch + 1, **{f"train_{k}": float(v) for k, v in jax.device_get(metrics).items()}}
            record["epoch_seconds"] = time.perf_counter() - start
            if not math.isfinite(record["train_loss"]):
                raise NonFiniteLossError(
                    f"{desc}: the training loss became {record['train_loss']} in epoch {epoch + 1}; "
                    "lower the learning rate or check the inputs"
                    + (f" (the last good epoch is checkpointed in {checkpoint_dir})" if ckpt else ""))
            if val is not None:
                start = time.perf_counter()
                record.update({f"val_{k}": float(v) for k, v in jax.device_get(eval_fn(state, val_data)).items()})
                record["eval_seconds"] = time.perf_counter() - start
            record["lr_scale"] = float(state.lr_scale)
            history.append(record)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k.endswith(("loss", "accuracy"))})
            stop = False
            for callback in callbacks:
                state, halt = callback(history, state)
                stop |= halt
            state = parallel.put_replicated(state, mesh)
            if ckpt is not None:
                ckpt.save(epoch + 1, state, history)
            if stop:
                break
    finally:
        bar.close()
        if ckpt is not None:
            ckpt.close()
    return FitResult(state, history, compile_seconds)
