"""Pure train and eval steps, and whole epochs as one compiled ``lax.scan``.

Inputs are uint8 images; they become floats in [0, 1] inside the step, so a dataset
lives on the device at a quarter of its float size.
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
Augment = Callable[[jax.Array, jax.Array], jax.Array]
"""``augment(rng, images) -> images``: a random transform of a float [0, 1] NHWC training batch."""


def train_step(state: TrainState, batch: Batch, rng: jax.Array, loss_fn: LossFn,
               augment: Augment | None = None) -> tuple[TrainState, Metrics]:
    """One optimizer step on ``batch`` (augmented by ``augment`` if given); metrics are batch
    means (with dropout, as Keras reports)."""
    mutable = ["batch_stats"] if state.batch_stats else []
    images = to_float(batch["image"])
    if augment is not None:
        augment_rng, rng = jax.random.split(rng)
        images = augment(augment_rng, images)

    def objective(params):
        variables = {**state.variables(), "params": params}
        (outputs, _), updates = state.apply(variables, images, train=True,
                                            rngs={"dropout": rng}, mutable=mutable)
        metrics = jax.tree.map(jnp.mean, loss_fn(outputs, batch))
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


def _batches(data: Batch, order: jax.Array, batch_size: int, sharding: NamedSharding | None):
    """Reshape an index order into ``(steps, batch_size)``; gather one batch per scan step."""
    order = order.reshape(-1, batch_size)

    def take(idx):
        batch = jax.tree.map(lambda a: a[idx], data)
        return batch if sharding is None else jax.lax.with_sharding_constraint(batch, sharding)

    return order, take


def train_epoch(state: TrainState, data: Batch, rng: jax.Array, loss_fn: LossFn, batch_size: int,
                sharding: NamedSharding | None = None,
                augment: Augment | None = None) -> tuple[TrainState, Metrics]:
    """One shuffled pass over on-device ``data`` (last partial batch dropped), one compiled scan.

    Returns the epoch's mean train metrics.  ``sharding`` splits each batch over devices;
    ``augment`` transforms each training batch on the device.
    """
    n = jax.tree.leaves(data)[0].shape[0]
    steps = n // batch_size
    if steps == 0:
        raise UsageError(f"{n} training examples make no batch of {batch_size}; lower the batch size")
    perm_rng, step_rng = jax.random.split(rng)
    order = jax.random.permutation(perm_rng, n)[: steps * batch_size]
    order, take = _batches(data, order, batch_size, sharding)

    def body(state, xs):
        idx, key = xs
        return train_step(state, take(idx), key, loss_fn, augment)

    state, metrics = jax.lax.scan(body, state, (order, jax.random.split(step_rng, steps)))
    return state, jax.tree.map(jnp.mean, metrics)


def evaluate(state: TrainState, data: Batch, loss_fn: LossFn, batch_size: int,
             sharding: NamedSharding | None = None) -> Metrics:
    """Exact mean metrics over on-device ``data`` padded to whole batches with a ``mask``."""
    n = data["mask"].shape[0]
    order, take = _batches(data, jnp.arange(n), batch_size, sharding)

    def body(totals, idx):
        sums = eval_step(state, take(idx), loss_fn)
        return jax.tree.map(jnp.add, totals, sums), None

    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                         jax.eval_shape(lambda: eval_step(state, take(order[0]), loss_fn)))
    totals, _ = jax.lax.scan(body, zeros, order)
    count = totals.pop("count")
    return {k: v / count for k, v in totals.items()}
