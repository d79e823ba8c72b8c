"""Pure train and eval steps, and an epoch's steps driven two ways: the whole epoch as one
compiled ``lax.scan``, or ``count`` steps unrolled per compiled call (``train_steps``) from a
Python loop.  Both follow the same ``epoch_plan`` (batch order and per-step keys), so they
train the same models; which is faster depends on the backend (XLA:CPU runs some ops much
slower inside a loop body, JAX issue 12868).  Streamed batches come up to K per compiled call
(``train_batches``).

Inputs are uint8 images; they become floats in [0, 1] inside the step, so a dataset
lives on the device at a quarter of its float size.  ``precision="bf16"`` computes the
forward and backward passes in bfloat16 while parameters, gradients and optimizer state stay
float32 (bfloat16 has float32's exponent range: no loss scaling is needed).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding

from jaxcv.errors import UsageError
from jaxcv.train.losses import Batch, LossFn, to_float
from jaxcv.train.state import TrainState

Metrics = dict[str, jax.Array]
Plan = tuple[jax.Array, jax.Array]
"""An epoch's ``(order, keys)``: example indices ``(steps, batch_size)`` and one key per step."""
PRECISIONS = {"float32": jnp.float32, "bf16": jnp.bfloat16}
"""Compute dtypes by name (parameters and optimizer state are float32 in both)."""
Augment = Callable[[jax.Array, jax.Array], jax.Array]
"""``augment(rng, images) -> images``: a random transform of a float [0, 1] NHWC training batch."""


def compute_dtype(precision: str) -> jnp.dtype:
    """The dtype a ``precision`` name computes in."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def train_step(state: TrainState, batch: Batch, rng: jax.Array, loss_fn: LossFn,
               augment: Augment | None = None, precision: str = "float32") -> tuple[TrainState, Metrics]:
    """One optimizer step on ``batch`` (augmented by ``augment`` if given), computed in
    ``precision``; metrics are batch means (with dropout, as Keras reports)."""
    mutable = ["batch_stats"] if state.batch_stats else []
    dtype = compute_dtype(precision)
    images = to_float(batch["image"])
    if augment is not None:
        augment_rng, rng = jax.random.split(rng)
        images = augment(augment_rng, images)
    images = images.astype(dtype)

    def objective(params):
        # The cast is inside the gradient: gradients arrive float32, like the parameters.
        variables = {**state.variables(), "params": jax.tree.map(lambda p: p.astype(dtype), params)}
        (outputs, _), updates = state.apply(variables, images, train=True,
                                            rngs={"dropout": rng}, mutable=mutable)
        metrics = jax.tree.map(jnp.mean, loss_fn(outputs.astype(jnp.float32), batch))
        return metrics["loss"], (metrics, updates)

    grads, (metrics, updates) = jax.grad(objective, has_aux=True)(state.params)
    steps, opt_state = state.tx.update(grads, state.opt_state, state.params)
    steps = jax.tree.map(lambda u: u * state.lr_scale.astype(u.dtype), steps)
    new_state = state.replace(
        step=state.step + 1,
        params=jax.tree.map(jnp.add, state.params, steps),
        batch_stats=updates.get("batch_stats", state.batch_stats),
        opt_state=opt_state,
    )
    return new_state, metrics


def eval_step(state: TrainState, batch: Batch, loss_fn: LossFn) -> Metrics:
    """Sums of per-example metrics over the examples whose ``batch["mask"]`` is 1, and their count."""
    outputs, _ = state.apply(state.variables(), to_float(batch["image"]), train=False)
    mask = batch["mask"]
    sums = {k: jnp.sum(v * mask) for k, v in loss_fn(outputs, batch).items()}
    return {**sums, "count": jnp.sum(mask)}


def _taker(data: Batch, sharding: NamedSharding | None) -> Callable[[jax.Array], Batch]:
    """``take(indices)``: the batch of ``data`` at ``indices``, split by ``sharding`` if given."""

    def take(idx):
        batch = jax.tree.map(lambda a: a[idx], data)
        return batch if sharding is None else jax.lax.with_sharding_constraint(batch, sharding)

    return take


def epoch_plan(rng: jax.Array, n: int, batch_size: int) -> Plan:
    """A shuffled epoch over ``n`` examples (the last partial batch dropped): its batches'
    indices and one key per step, drawn from ``rng``."""
    steps = n // batch_size
    if steps == 0:
        raise UsageError(f"{n} training examples make no batch of {batch_size}; lower the batch size")
    perm_rng, step_rng = jax.random.split(rng)
    order = jax.random.permutation(perm_rng, n)[: steps * batch_size]
    return order.reshape(steps, batch_size), jax.random.split(step_rng, steps)


def train_epoch(state: TrainState, data: Batch, rng: jax.Array, loss_fn: LossFn, batch_size: int,
                sharding: NamedSharding | None = None, augment: Augment | None = None,
                precision: str = "float32") -> tuple[TrainState, Metrics]:
    """One shuffled pass over on-device ``data`` (``epoch_plan``), one compiled scan.

    Returns the epoch's mean train metrics.  ``sharding`` splits each batch over devices;
    ``augment`` transforms each training batch on the device.
    """
    order, keys = epoch_plan(rng, jax.tree.leaves(data)[0].shape[0], batch_size)
    take = _taker(data, sharding)

    def body(state, xs):
        idx, key = xs
        return train_step(state, take(idx), key, loss_fn, augment, precision)

    state, metrics = jax.lax.scan(body, state, (order, keys))
    return state, jax.tree.map(jnp.mean, metrics)


def train_batches(state: TrainState, batches: Batch, rng: jax.Array, start: jax.Array, count: jax.Array,
                  loss_fn: LossFn, sharding: NamedSharding | None = None, augment: Augment | None = None,
                  precision: str = "float32") -> tuple[TrainState, Metrics]:
    """Steps on the first ``count`` of a stack of streamed batches (leading axis; the rest is
    padding), step ``start + i`` with key ``fold_in(rng, start + i)``, in one compiled loop.
    Returns the sums of the steps' metrics.

    Why several per call: XLA:CPU maps a fresh temporary buffer for every call and the kernel
    zeroes its pages (195 MB, ~50,000 page faults, per ``cifar_cnn`` step of 64 on jax 0.10),
    so one step per call took 167 ms where a loop of 8 took 130 ms a step."""

    take = _taker(batches, sharding)

    def step(state, i):
        return train_step(state, take(i), jax.random.fold_in(rng, start + i), loss_fn, augment, precision)

    zeros = jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), jax.eval_shape(step, state, 0)[1])

    def body(i, carry):
        state, metrics = step(carry[0], i)
        return state, jax.tree.map(jnp.add, carry[1], metrics)

    return jax.lax.fori_loop(0, count, body, (state, zeros))


def train_steps(state: TrainState, data: Batch, plan: Plan, start: jax.Array, loss_fn: LossFn, count: int,
                sharding: NamedSharding | None = None, augment: Augment | None = None,
                precision: str = "float32") -> tuple[TrainState, Metrics]:
    """Steps ``start .. start + count - 1`` of an epoch's ``plan`` over on-device ``data``,
    unrolled in one compiled call (no loop body: XLA:CPU compiles each step's convolutions as
    it would a lone step's).  Returns the sums of the steps' metrics."""
    order, keys = plan
    take = _taker(data, sharding)
    totals = None
    for i in range(count):
        state, metrics = train_step(state, take(order[start + i]), keys[start + i], loss_fn, augment, precision)
        totals = metrics if totals is None else jax.tree.map(jnp.add, totals, metrics)
    return state, totals


def evaluate(state: TrainState, data: Batch, loss_fn: LossFn, batch_size: int,
             sharding: NamedSharding | None = None) -> Metrics:
    """Exact mean metrics over on-device ``data`` padded to whole batches with a ``mask``."""
    n = data["mask"].shape[0]
    order, take = jnp.arange(n).reshape(-1, batch_size), _taker(data, sharding)

    def body(totals, idx):
        sums = eval_step(state, take(idx), loss_fn)
        return jax.tree.map(jnp.add, totals, sums), None

    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                         jax.eval_shape(lambda: eval_step(state, take(order[0]), loss_fn)))
    totals, _ = jax.lax.scan(body, zeros, order)
    count = totals.pop("count")
    return {k: v / count for k, v in totals.items()}
