"""How a training epoch runs for K models at once (a state stacked on a leading axis):
over a training set held on the device, one compiled ``lax.scan`` per epoch, or over
batches streamed from the host, one compiled step per batch."""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcv.errors import UsageError
from jaxcv.train import members, parallel
from jaxcv.train.losses import LossFn
from jaxcv.train.state import TrainState
from jaxcv.train.steps import Augment, Metrics, to_float, train_epoch, train_step

Arrays = dict[str, np.ndarray]
"""A dataset split or a batch on the host: ``image`` (uint8 NHWC) and its targets."""
BatchStream = Callable[[int], Iterable[Arrays]]
"""``epoch -> batches``: a training set streamed from the host instead of held on the device;
every batch has the same size.  With several processes, each streams its own block of every
global batch (``parallel.put_local_batch``'s layout): process ``i`` of ``P`` rows
``[i * n, (i + 1) * n)`` of a global batch of ``P * n``."""


def aot_compile(fn: Callable, *args: Any, donate: bool = False) -> jax.stages.Compiled:
    """``jax.jit(fn)`` compiled ahead of time for ``args``, donating the first if asked."""
    return jax.jit(fn, donate_argnums=0 if donate else ()).lower(*args).compile()


def host_batches(data: Arrays, batch_size: int, seed: int = 0) -> BatchStream:
    """``data`` as a ``BatchStream`` of global batches of ``batch_size``: every epoch a new
    shuffle (from ``seed`` and the epoch), cut into whole batches on the host, of which each
    process keeps its own block (every process holds the same ``data``, checked).  For a set
    that fits in host memory but not on the device: only one batch at a time is sent there."""
    n = len(data["image"])
    if n < batch_size:
        raise UsageError(f"{n} training examples make no batch of {batch_size}; lower the batch size")
    block = parallel.local_block(batch_size)
    parallel.check_processes_agree("the training data", data)

    def batches(epoch: int) -> Iterable[Arrays]:
        order = np.random.default_rng([seed, epoch]).permutation(n)[: n // batch_size * batch_size]
        return ({k: v[idx[block]] for k, v in data.items()} for idx in order.reshape(-1, batch_size))

    return batches


class DeviceEpochs:
    """Whole epochs over a training set held on the device (replicated over the mesh), one
    compiled call each; model k shuffles with its own key."""

    def __init__(self, data: Arrays, fn: Callable, mesh: Mesh):
        self.host_data, self.mesh, self.fn = data, mesh, members.over_members(fn)
        self.compiled = self.data = None

    def sample(self) -> np.ndarray:
        return self.host_data["image"][:1]

    def compile(self, state: TrainState, rngs: jax.Array, active: jax.Array) -> None:
        self.data = parallel.put_replicated(self.host_data, self.mesh)
        self.compiled = aot_compile(self.fn, state, self.data, rngs, active, donate=True)

    def __call__(self, state: TrainState, rngs: jax.Array, active: jax.Array, epoch: int
                 ) -> tuple[TrainState, Metrics]:
        return self.compiled(state, self.data, rngs, active)


class StreamedEpochs:
    """Epochs over host batches, one compiled step per batch, each global batch assembled
    from the processes' blocks and split over the mesh's devices; the K models see the same
    batches."""

    def __init__(self, batches: BatchStream, fn: Callable, mesh: Mesh):
        self.batches, self.sharding, self.fn = batches, parallel.batch_sharded(mesh), members.over_members(fn)
        self.compiled = self.first = None

    def sample(self) -> np.ndarray:
        return self._first()["image"][:1]

    def _first(self) -> Arrays:
        if self.first is None:
            self.first = next(iter(self.batches(0)), None)
            if self.first is None:
                raise UsageError("the training stream gave no batch in epoch 0")
        return self.first

    def compile(self, state: TrainState, rngs: jax.Array, active: jax.Array) -> None:
        first, processes = self._first(), jax.process_count()
        shapes = {k: ((len(v) * processes, *v.shape[1:]), v.dtype) for k, v in first.items()}
        parallel.check_processes_agree("the training stream's batch shapes", sorted(shapes.items()))
        parallel.check_batch_size(len(first["image"]) * processes, self.sharding.mesh)
        spec = {k: jax.ShapeDtypeStruct(shape, dtype, sharding=self.sharding) for k, (shape, dtype) in shapes.items()}
        self.compiled = aot_compile(self.fn, state, spec, rngs, active, donate=True)

    def __call__(self, state: TrainState, rngs: jax.Array, active: jax.Array, epoch: int
                 ) -> tuple[TrainState, Metrics]:
        totals, steps = None, 0
        for batch in self.batches(epoch):
            state, metrics = self.compiled(state, parallel.put_local_batch(batch, self.sharding),
                                           members.fold_in(rngs, steps), active)
            totals = metrics if totals is None else jax.tree.map(jnp.add, totals, metrics)
            steps += 1
        if totals is None:
            raise UsageError(f"the training stream gave no batch in epoch {epoch}")
        return state, jax.tree.map(lambda t: t / steps, totals)


def training_epochs(train: Arrays | BatchStream, *, loss_fn: LossFn, batch_size: int, augment: Augment | None,
                    mesh: Mesh) -> DeviceEpochs | StreamedEpochs:
    """The epochs ``fit_many`` runs: on the device for arrays, streamed for a ``BatchStream``."""
    if isinstance(train, dict):
        return DeviceEpochs(train, functools.partial(train_epoch, loss_fn=loss_fn, batch_size=batch_size,
                                                     sharding=parallel.batch_sharded(mesh), augment=augment), mesh)
    return StreamedEpochs(train, functools.partial(train_step, loss_fn=loss_fn, augment=augment), mesh)


def sample_input(epochs: DeviceEpochs | StreamedEpochs) -> jax.Array:
    """One training image as a float batch of one, to initialise models on."""
    return to_float(jnp.asarray(epochs.sample()))
