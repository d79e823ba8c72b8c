"""How a training epoch runs for K models at once (a state stacked on a leading axis):
over a training set held on the device, by one of two drivers: one compiled
``lax.scan`` per epoch (``"scan"``) or a Python loop of compiled calls of K unrolled steps
each (``"unrollK"``), the same models either way; or over batches streamed from the host,
one (``"stream"``) or up to K (``"streamK"``) per compiled call."""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcv.errors import UsageError
from jaxcv.train import members, parallel
from jaxcv.train.losses import LossFn
from jaxcv.train.state import TrainState
from jaxcv.train.steps import (Augment, Metrics, epoch_plan, to_float, train_batches, train_epoch, train_step,
                               train_steps)

Arrays = dict[str, np.ndarray]
"""A dataset split or a batch on the host: ``image`` (uint8 NHWC) and its targets."""
BatchStream = Callable[[int], Iterable[Arrays]]
"""``epoch -> batches``: a training set streamed from the host instead of held on the device;
every batch has the same size.  With several processes, each streams its own block of every
global batch (``parallel.put_local_batch``'s layout): process ``i`` of ``P`` rows
``[i * n, (i + 1) * n)`` of a global batch of ``P * n``."""


def steps_per_call(driver: str) -> int | None:
    """K of an ``"unrollK"`` driver; ``None`` for ``"scan"``."""
    if driver == "scan":
        return None
    k = driver.removeprefix("unroll")
    if driver.startswith("unroll") and k.isdigit() and int(k) >= 1:
        return int(k)
    streamed = " (a study streams its training set with --stream)" if driver.startswith("stream") else ""
    raise UsageError(f"unknown epoch driver {driver!r} for a training set on the device; use 'scan' or 'unrollK' "
                     f"with K >= 1 (e.g. 'unroll8'){streamed}")


def aot_compile(fn: Callable, *args: Any, donate: bool = False) -> jax.stages.Compiled:
    """``jax.jit(fn)`` compiled ahead of time for ``args``, donating the first if asked."""
    return jax.jit(fn, donate_argnums=0 if donate else ()).lower(*args).compile()


def batches_per_call(driver: str) -> int:
    """K of a streamed ``"streamK"`` driver; 1 for ``"stream"``."""
    k = driver.removeprefix("stream")
    if driver.startswith("stream") and (k == "" or k.isdigit() and int(k) >= 1):
        return int(k or 1)
    raise UsageError(f"a streamed training set runs driver 'stream' or 'streamK' (K >= 1 batches per compiled "
                     f"call, e.g. 'stream8'), not {driver!r}")


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
    """Whole epochs over a training set held on the device (replicated over the mesh);
    model k shuffles with its own key.  ``driver`` says how an epoch runs: ``"scan"``, one
    compiled scan, or ``"unrollK"``, an ``epoch_plan`` then its steps K at a time (and the
    remainder), K unrolled steps per compiled call."""

    tunable_drivers = ("scan", "unroll1", "unroll8")
    """The drivers ``jaxcv.train.autotune`` times: K = 8 cut a CPU epoch ~24 % below one step per
    call in one measurement, one step per call beat K = 8 in another."""

    def __init__(self, data: Arrays, mesh: Mesh, *, batch_size: int, driver: str = "scan", **step_options: Any):
        self.host_data, self.mesh, self.batch_size = data, mesh, batch_size
        self.driver, self.k = driver, steps_per_call(driver)
        self.options = {**step_options, "sharding": parallel.batch_sharded(mesh)}
        self.compiled: dict[str | int, jax.stages.Compiled] = {}  # "epoch"; or "plan" and steps per call
        self.data = None

    def sample(self) -> np.ndarray:
        return self.host_data["image"][:1]

    def sampled(self, steps: int) -> DeviceEpochs:
        """The same epochs over ``steps`` batches (the set cut, or repeated if shorter), for timing."""
        n = steps * self.batch_size
        data = {k: np.resize(v, (n, *v.shape[1:])) for k, v in self.host_data.items()}
        return DeviceEpochs(data, self.mesh, batch_size=self.batch_size, driver=self.driver, **self.options)

    def with_driver(self, driver: str) -> DeviceEpochs:
        return DeviceEpochs(self.host_data, self.mesh, batch_size=self.batch_size, driver=driver, **self.options)

    def compile(self, state: TrainState, rngs: jax.Array, active: jax.Array) -> None:
        self.data = parallel.put_replicated(self.host_data, self.mesh)
        if self.k is None:
            fn = functools.partial(train_epoch, batch_size=self.batch_size, **self.options)
            self.compiled["epoch"] = aot_compile(members.over_members(fn), state, self.data, rngs, active, donate=True)
            return
        n = len(self.host_data["image"])
        plan_fn = jax.vmap(functools.partial(epoch_plan, n=n, batch_size=self.batch_size))
        self.compiled["plan"] = aot_compile(plan_fn, rngs)
        plan = jax.eval_shape(plan_fn, rngs)
        steps = n // self.batch_size
        for count in {min(self.k, steps), steps % self.k} - {0}:
            self.compiled[count] = aot_compile(self._unrolled(count), state, self.data, plan, jnp.int32(0), active,
                                               donate=True)

    def _unrolled(self, count: int) -> Callable:
        """``(states, data, plans, start, active) -> (states, metric sums)``: ``count`` steps."""

        def run(state, data, plan, start, active):
            fn = functools.partial(train_steps, start=start, count=count, **self.options)
            return members.over_members(fn)(state, data, plan, active)

        return run

    def __call__(self, state: TrainState, rngs: jax.Array, active: jax.Array, epoch: int
                 ) -> tuple[TrainState, Metrics]:
        if self.k is None:
            return self.compiled["epoch"](state, self.data, rngs, active)
        plan = self.compiled["plan"](rngs)
        steps, totals = len(self.host_data["image"]) // self.batch_size, None
        for start in range(0, steps, self.k):
            count = min(self.k, steps - start)
            state, sums = self.compiled[count](state, self.data, plan, jnp.int32(start), active)
            totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
        return state, jax.tree.map(lambda t: t / steps, totals)


class StreamedEpochs:
    """Epochs over host batches, each global batch assembled from the processes' blocks and
    split over the mesh's devices; the K models see the same batches.  ``driver`` says how
    many batches a compiled call takes: ``"stream"`` one, ``"streamK"`` up to K (stacked into
    one transfer, stepped through in a loop: ``train_batches``)."""

    tunable_drivers = ("stream", "stream8")
    """The drivers ``jaxcv.train.autotune`` times: on XLA:CPU 8 batches per call cut a streamed
    ``cifar_cnn`` step from 167 to 130 ms with jax 0.10 and from 88 to 72 ms with jax 0.11."""

    def __init__(self, batches: BatchStream, mesh: Mesh, *, batch_size: int, driver: str = "stream8",
                 **step_options: Any):
        self.batches, self.mesh, self.batch_size, self.options = batches, mesh, batch_size, step_options
        self.driver, self.k = driver, batches_per_call(driver)
        self.sharding = parallel.batch_sharded(mesh, stacked=True)
        self.compiled = self.first = None

    def sample(self) -> np.ndarray:
        return self._first()["image"][:1]

    def sampled(self, steps: int) -> StreamedEpochs:
        """The same epochs over ``steps`` copies of the first batch, for timing."""
        first = self._first()
        return StreamedEpochs(lambda epoch: [first] * steps, self.mesh, batch_size=self.batch_size,
                              driver=self.driver, **self.options)

    def with_driver(self, driver: str) -> StreamedEpochs:
        return StreamedEpochs(self.batches, self.mesh, batch_size=self.batch_size, driver=driver, **self.options)

    def _first(self) -> Arrays:
        """The first batch of epoch 0, whose shapes every batch must have; refused unless it
        is (with the other processes' blocks) a global batch of ``batch_size``: the size that
        ``fit`` was given, and reports, is the size that trains."""
        if self.first is None:
            first = next(iter(self.batches(0)), None)
            if first is None:
                raise UsageError("the training stream gave no batch in epoch 0")
            if (size := len(first["image"]) * jax.process_count()) != self.batch_size:
                raise UsageError(f"the training stream's batches hold {size} examples, but the batch size is "
                                 f"{self.batch_size}; give the stream's batch size")
            self.first = first
        return self.first

    def _checked(self, batches: Iterable[Arrays], epoch: int) -> Iterator[Arrays]:
        """``batches``, each refused (by its place in the epoch) unless its arrays have the
        first batch's shapes and dtypes: one compiled program takes every batch."""
        expected = _layout(self._first())
        for index, batch in enumerate(batches):
            if (layout := _layout(batch)) != expected:
                raise UsageError(f"batch {index} of epoch {epoch} of the training stream is {layout}, unlike its "
                                 f"first batch, {expected}: every batch must have the same size and dtypes (drop a "
                                 f"last, partial batch)")
            yield batch

    def _steps(self, state, data, rng):
        """``(state, (stacked batches, start, count), rng) -> (state, metric sums)``."""
        batches, start, count = data
        if self.k == 1:  # a lone step, no loop: XLA's convolution is slow in a loop body on jax 0.10's CPU
            return train_step(state, jax.tree.map(lambda a: a[0], batches), jax.random.fold_in(rng, start),
                              **self.options)
        return train_batches(state, batches, rng, start, count, sharding=parallel.batch_sharded(self.mesh),
                             **self.options)

    def compile(self, state: TrainState, rngs: jax.Array, active: jax.Array) -> None:
        first, processes = self._first(), jax.process_count()
        shapes = {k: ((len(v) * processes, *v.shape[1:]), v.dtype) for k, v in first.items()}
        parallel.check_processes_agree("the training stream's batch shapes", sorted(shapes.items()))
        parallel.check_batch_size(self.batch_size, self.mesh)
        spec = {k: jax.ShapeDtypeStruct((self.k, *shape), dtype, sharding=self.sharding)
                for k, (shape, dtype) in shapes.items()}
        self.compiled = aot_compile(members.over_members(self._steps), state, (spec, jnp.int32(0), jnp.int32(0)),
                                    rngs, active, donate=True)

    def __call__(self, state: TrainState, rngs: jax.Array, active: jax.Array, epoch: int
                 ) -> tuple[TrainState, Metrics]:
        totals, steps = None, 0
        for group in _groups(self._checked(self.batches(epoch), epoch), self.k):
            stacked = {k: np.stack([b[k] for b in group] + [np.zeros_like(group[0][k])] * (self.k - len(group)))
                       for k in group[0]}
            data = (parallel.put_local_batch(stacked, self.sharding), jnp.int32(steps), jnp.int32(len(group)))
            state, sums = self.compiled(state, data, rngs, active)
            totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
            steps += len(group)
        if totals is None:
            raise UsageError(f"the training stream gave no batch in epoch {epoch}")
        return state, jax.tree.map(lambda t: t / steps, totals)


def _layout(batch: Arrays) -> dict[str, str]:
    """Each array's dtype, as jax holds it (int64 is int32 without x64), and shape: ``uint8[32, 28, 28, 1]``."""
    return {k: f"{jax.dtypes.canonicalize_dtype(v.dtype)}{list(v.shape)}" for k, v in batch.items()}


def _groups(items: Iterable[Arrays], size: int) -> Iterator[list[Arrays]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    items = iter(items)
    while group := list(itertools.islice(items, size)):
        yield group


def training_epochs(train: Arrays | BatchStream, *, loss_fn: LossFn, batch_size: int, augment: Augment | None,
                    mesh: Mesh, precision: str = "float32") -> DeviceEpochs | StreamedEpochs:
    """The epochs ``fit_many`` runs: on the device for arrays (scan driver until
    ``with_driver`` says otherwise), streamed for a ``BatchStream``."""
    options = {"loss_fn": loss_fn, "augment": augment, "precision": precision}
    if isinstance(train, dict):
        return DeviceEpochs(train, mesh, batch_size=batch_size, **options)
    return StreamedEpochs(train, mesh, batch_size=batch_size, **options)


def sample_input(epochs: DeviceEpochs | StreamedEpochs) -> jax.Array:
    """One training image as a float batch of one, to initialise models on."""
    return to_float(jnp.asarray(epochs.sample()))
