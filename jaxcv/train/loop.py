"""``fit`` and ``fit_many``: train one model, or K models vmapped in one compiled function,
for some epochs, evaluating, checkpointing and calling back."""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from jaxcv.train import members, parallel
from jaxcv.train.callbacks import Callback, History
from jaxcv.train.checkpoint import Checkpointer
from jaxcv.train.losses import LossFn, classification
from jaxcv.train.state import TrainState, create_state
from jaxcv.train.steps import Augment, evaluate, to_float, train_epoch, train_step

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

    def __init__(self, data: Arrays, fn: Callable, mesh: Mesh, stacked: bool):
        self.data = parallel.put_replicated(data, mesh)
        self.fn = members.over_members(fn, stacked)
        self.compiled = None

    def compile(self, state: TrainState, rng: jax.Array, active: jax.Array) -> None:
        self.compiled = aot_compile(self.fn, state, self.data, rng, active, donate=True)

    def __call__(self, state: TrainState, rng: jax.Array, active: jax.Array, epoch: int):
        return self.compiled(state, self.data, rng, active)


class _StreamedEpochs:
    """Epochs over host batches: one compiled step per batch, each batch split over devices."""

    def __init__(self, batches: BatchStream, fn: Callable, mesh: Mesh, stacked: bool):
        self.batches, self.sharding = batches, parallel.batch_sharded(mesh)
        self.fn = members.over_members(fn, stacked)
        self.compiled = None

    def compile(self, state: TrainState, rng: jax.Array, active: jax.Array) -> None:
        first = next(iter(self.batches(0)))
        spec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=self.sharding) for k, v in first.items()}
        self.compiled = aot_compile(self.fn, state, spec, rng, active, donate=True)

    def __call__(self, state: TrainState, rng: jax.Array, active: jax.Array, epoch: int):
        totals, steps = None, 0
        for batch in self.batches(epoch):
            state, metrics = self.compiled(state, jax.device_put(batch, self.sharding),
                                           members.fold_in(rng, steps), active)
            totals = metrics if totals is None else jax.tree.map(jnp.add, totals, metrics)
            steps += 1
        if totals is None:
            raise ValueError(f"the training stream gave no batch in epoch {epoch}")
        return state, jax.tree.map(lambda t: t / steps, totals)


def fit(model: nn.Module, train: Arrays | BatchStream, val: Arrays | None, *,
        optimizer: optax.GradientTransformation, epochs: int, batch_size: int,
        loss_fn: LossFn = classification, seed: int = 0, hparams: Mapping[str, float] | None = None,
        augment: Augment | None = None, eval_batch_size: int | None = None, mesh: Mesh | None = None,
        callbacks: Sequence[Callback] = (), checkpoint_dir: str | Path | None = None,
        progress: bool = True, desc: str = "fit") -> FitResult:
    """Train ``model`` on ``train`` for ``epochs``, data-parallel over ``mesh`` (default: all devices).

    ``train`` is a dict of arrays (``image`` uint8 and targets), held on the device and run a
    whole epoch per compiled call, or a ``BatchStream`` of host batches.  ``augment``
    transforms every training batch inside the compiled step.  ``val`` (arrays) is evaluated
    exactly after every epoch.  With ``checkpoint_dir`` every epoch is saved and a rerun
    resumes from the newest checkpoint.  Returns the state and a history of one record per
    epoch; compile time is kept out of every ``epoch_seconds``.  A non-finite training loss
    raises ``NonFiniteLossError``.  ``hparams`` sets model fields or optimizer
    hyper-parameters as ``fit_many`` does.
    """
    hparams = {name: [value] for name, value in (hparams or {}).items()}
    return _fit(model, train, val, [seed], hparams, False, optimizer=optimizer, epochs=epochs,
                batch_size=batch_size, loss_fn=loss_fn, augment=augment, eval_batch_size=eval_batch_size,
                mesh=mesh, callbacks=callbacks, checkpoint_dir=checkpoint_dir, progress=progress,
                desc=desc)[0]


def fit_many(model: nn.Module, train: Arrays | BatchStream, val: Arrays | None, *,
             seeds: Sequence[int], hparams: Mapping[str, Sequence[float]] | None = None,
             optimizer: optax.GradientTransformation, epochs: int, batch_size: int,
             loss_fn: LossFn = classification, augment: Augment | None = None,
             eval_batch_size: int | None = None, mesh: Mesh | None = None,
             callbacks: Sequence[Callback] = (), checkpoint_dir: str | Path | None = None,
             progress: bool = True, desc: str = "fit") -> list[FitResult]:
    """Train K = ``len(seeds)`` models at once: ``jax.vmap`` over their states and random
    keys inside one compiled epoch, data-parallel over ``mesh`` as in ``fit``.

    Model k is the model ``fit(..., seed=seeds[k])`` trains (same initialisation, data order
    and dropout masks), with ``hparams[name][k]`` for each ``name``: a field of ``model``
    (``dropout_rate``) or a hyper-parameter of the optimizer's state (``learning_rate``,
    ``weight_decay``, ``momentum`` of ``make_optimizer``; any ``optax.inject_hyperparams``).
    Callbacks act per model; a model that stops early, or whose loss becomes non-finite
    (its last record shows it), keeps its state while the others go on.  Every record's
    ``epoch_seconds`` is the time of the whole K-model epoch.  Returns one result per model.
    """
    hparams = dict(hparams or {})
    if not seeds:
        raise ValueError("fit_many needs at least one seed")
    for name, values in hparams.items():
        if len(values) != len(seeds):
            raise ValueError(f"hparams[{name!r}] has {len(values)} values for {len(seeds)} seeds")
    return _fit(model, train, val, list(seeds), hparams, True, optimizer=optimizer, epochs=epochs,
                batch_size=batch_size, loss_fn=loss_fn, augment=augment, eval_batch_size=eval_batch_size,
                mesh=mesh, callbacks=callbacks, checkpoint_dir=checkpoint_dir, progress=progress,
                desc=desc)


def _fit(model: nn.Module, train: Arrays | BatchStream, val: Arrays | None, seeds: list[int],
         hparams: dict[str, Sequence[float]], stacked: bool, *, optimizer: optax.GradientTransformation,
         epochs: int, batch_size: int, loss_fn: LossFn, augment: Augment | None,
         eval_batch_size: int | None, mesh: Mesh | None, callbacks: Sequence[Callback],
         checkpoint_dir: str | Path | None, progress: bool, desc: str) -> list[FitResult]:
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    mesh = parallel.data_mesh() if mesh is None else mesh
    eval_batch_size = eval_batch_size or max(batch_size, 256 // mesh.size * mesh.size)
    parallel.check_batch_size(batch_size, mesh)
    parallel.check_batch_size(eval_batch_size, mesh)
    k = len(seeds)

    sample = to_float(jnp.asarray(train["image"][:1] if isinstance(train, dict)
                                  else next(iter(train(0)))["image"][:1]))
    states, epoch_rngs = [], []
    for i, seed in enumerate(seeds):
        init_rng, epoch_rng = jax.random.split(jax.random.key(seed))
        state = create_state(model, optimizer, sample, init_rng)
        states.append(members.with_hparams(state, {name: v[i] for name, v in hparams.items()}))
        epoch_rngs.append(epoch_rng)
    state = parallel.put_replicated(members.stack(states) if stacked else states[0], mesh)
    epoch_rng = jnp.stack(epoch_rngs) if stacked else epoch_rngs[0]
    histories: list[History] = [[] for _ in seeds]
    active = [True] * k
    ckpt = Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and (restored := ckpt.restore_latest(state)) is not None:
        state, meta = restored
        histories, active = meta["histories"], meta["active"]

    done = max(len(h) for h in histories)
    if done >= epochs or not any(active):
        return [FitResult(members.member(state, i, stacked), histories[i], 0.0) for i in range(k)]
    if isinstance(train, dict):
        run_epoch = _DeviceEpochs(train, functools.partial(
            train_epoch, loss_fn=loss_fn, batch_size=batch_size, sharding=parallel.batch_sharded(mesh),
            augment=augment), mesh, stacked)
    else:
        run_epoch = _StreamedEpochs(train, functools.partial(train_step, loss_fn=loss_fn, augment=augment),
                                    mesh, stacked)
    start = time.perf_counter()
    run_epoch.compile(state, epoch_rng, jnp.asarray(active))
    if val is not None:
        val_data = parallel.put_replicated(pad_to_batches(val, eval_batch_size), mesh)
        eval_fn = functools.partial(evaluate, loss_fn=loss_fn, batch_size=eval_batch_size,
                                    sharding=parallel.batch_sharded(mesh))
        eval_fn = aot_compile(jax.vmap(eval_fn, in_axes=(0, None)) if stacked else eval_fn, state, val_data)
    compile_seconds = time.perf_counter() - start

    bar = tqdm(range(done, epochs), desc=desc if k == 1 else f"{desc} ({k} models)", disable=not progress,
               unit="epoch", initial=done, total=epochs)
    try:
        for epoch in bar:
            if not any(active):
                break
            start = time.perf_counter()
            state, metrics = run_epoch(state, members.fold_in(epoch_rng, epoch), jnp.asarray(active), epoch)
            records = members.split_metrics(jax.device_get(metrics), k, "train_")
            seconds = time.perf_counter() - start
            if val is not None:
                start = time.perf_counter()
                val_records = members.split_metrics(jax.device_get(eval_fn(state, val_data)), k, "val_")
                eval_seconds = time.perf_counter() - start
            for i in (i for i in range(k) if active[i]):
                record = {"epoch": epoch + 1, **records[i], "epoch_seconds": seconds, "models": k}
                if val is not None:
                    record.update({**val_records[i], "eval_seconds": eval_seconds})
                member = members.member(state, i, stacked)
                record["lr_scale"] = float(member.lr_scale)
                histories[i].append(record)
                if not math.isfinite(record["train_loss"]):
                    if not stacked:
                        raise NonFiniteLossError(
                            f"{desc}: the training loss became {record['train_loss']} in epoch {epoch + 1}; "
                            "lower the learning rate or check the inputs"
                            + (f" (the last good epoch is checkpointed in {checkpoint_dir})" if ckpt else ""))
                    active[i] = False
                    continue
                for callback in callbacks:
                    updated, halt = callback(histories[i], member)
                    if updated is not member:
                        member = updated
                        state = members.set_member(state, i, updated, stacked)
                    active[i] = active[i] and not halt
            bar.set_postfix(_progress(histories, epoch + 1))
            state = parallel.put_replicated(state, mesh)
            if ckpt is not None:
                ckpt.save(epoch + 1, state, {"histories": histories, "active": active})
    finally:
        bar.close()
        if ckpt is not None:
            ckpt.close()
    return [FitResult(members.member(state, i, stacked), histories[i], compile_seconds) for i in range(k)]


def evaluate_arrays(state: TrainState, data: Arrays, *, loss_fn: LossFn = classification,
                    batch_size: int = 256, mesh: Mesh | None = None) -> dict[str, float]:
    """Exact mean metrics (``loss``, ``accuracy`` ...) of one trained model on ``data``, e.g. a
    test split kept apart from the validation set ``fit`` watched."""
    mesh = parallel.data_mesh() if mesh is None else mesh
    batch_size = -(-batch_size // mesh.size) * mesh.size
    padded = parallel.put_replicated(pad_to_batches(data, batch_size), mesh)
    fn = jax.jit(functools.partial(evaluate, loss_fn=loss_fn, batch_size=batch_size,
                                   sharding=parallel.batch_sharded(mesh)))
    return {k: float(v) for k, v in jax.device_get(fn(parallel.put_replicated(state, mesh), padded)).items()}


def predict(state: TrainState, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """One trained model's outputs (logits, predictions) on ``images`` in inference mode, as a
    host array; ``batch_size`` images per compiled call (the last batch padded)."""
    apply = jax.jit(lambda state, x: state.apply(state.variables(), to_float(x), train=False)[0])
    padded = pad_to_batches({"image": np.asarray(images)}, batch_size)["image"]
    out = [jax.device_get(apply(state, padded[i:i + batch_size])) for i in range(0, len(padded), batch_size)]
    return np.concatenate(out)[: len(images)]


def _progress(histories: list[History], epoch: int) -> dict[str, str]:
    """The progress bar's numbers: this epoch's losses and accuracies, averaged over models."""
    records = [h[-1] for h in histories if h and h[-1]["epoch"] == epoch]
    keys = [key for key in records[0] if key.endswith(("loss", "accuracy"))] if records else []
    return {key: f"{np.mean([r[key] for r in records]):.4g}" for key in keys}
