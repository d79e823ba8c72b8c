"""K models as one: train states stacked on a leading axis, for ``jax.vmap``.

``fit_many`` (and ``fit``, its K = 1 case) stacks the states of K models (one per seed or
hyper-parameter setting) and runs their epochs as one vmapped, compiled function (one model
unmapped, ``vmap``); these are its pieces.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxcv.errors import UsageError
from jaxcv.train.state import TrainState


# Compiled whole: run eagerly, each leaf's operation would be compiled on its own.

@jax.jit
def stack(states: list[TrainState]) -> TrainState:
    """K states as one, every leaf with a leading axis of K."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


@jax.jit
def member(state: TrainState, i: int | jax.Array) -> TrainState:
    """Model ``i`` of a stacked state."""
    return jax.tree.map(lambda a: a[i], state)


@jax.jit
def set_member(state: TrainState, i: int | jax.Array, new: TrainState) -> TrainState:
    """``state`` with model ``i`` replaced by ``new``."""
    return jax.tree.map(lambda a, b: a.at[i].set(b), state, new)


def fold_in(rngs: jax.Array, data: int) -> jax.Array:
    """``jax.random.fold_in`` of each of a stack of keys."""
    return jax.vmap(jax.random.fold_in, (0, None))(rngs, data)


def with_hparams(state: TrainState, values: Mapping[str, float]) -> TrainState:
    """``state`` with float model fields (``dropout_rate``) or optimizer hyper-parameters
    (``learning_rate`` ... of an ``optax.inject_hyperparams`` state) set to ``values``."""
    fields = {f.name for f in dataclasses.fields(state.model)
              if isinstance(getattr(state.model, f.name), float)}
    opt_hparams = getattr(state.opt_state, "hyperparams", {})
    model_values, opt_values = dict(state.hparams), {}
    for name, value in values.items():
        if name in fields:
            model_values[name] = jnp.asarray(value, jnp.float32)
        elif name in opt_hparams:
            opt_values[name] = jnp.asarray(value, opt_hparams[name].dtype)
        else:
            known = sorted(fields | set(opt_hparams))
            raise UsageError(f"{name!r} is neither a field of {type(state.model).__name__} nor a "
                             f"hyper-parameter of the optimizer; choose from {', '.join(known)}")
    if opt_values:
        state = state.replace(opt_state=state.opt_state._replace(hyperparams={**opt_hparams, **opt_values}))
    return state.replace(hparams=model_values)


def vmap(fn: Callable, in_axes: tuple[int | None, ...]) -> Callable:
    """``jax.vmap(fn, in_axes)`` over the models' axis (each of ``in_axes`` 0 or ``None``), except
    that a single model runs unmapped, indexed out and its outputs given the axis back: vmapped
    over an axis of one, whole ``mnist_cnn`` and ``cifar_cnn`` epochs ran 5-6 % slower on XLA:CPU
    with jax 0.11 (``xla_chunked``) and 11-14 % slower with jax 0.10 (im2col)."""

    def mapped(*args):
        mapped_args = [arg for arg, axis in zip(args, in_axes) if axis is not None]
        if {leaf.shape[0] for leaf in jax.tree.leaves(mapped_args)} != {1}:
            return jax.vmap(fn, in_axes=in_axes)(*args)
        out = fn(*(arg if axis is None else jax.tree.map(lambda a: a[0], arg) for arg, axis in zip(args, in_axes)))
        return jax.tree.map(lambda a: a[None], out)

    return mapped


def over_members(fn: Callable[..., tuple[TrainState, Any]]) -> Callable[..., tuple[TrainState, Any]]:
    """``fn(state, data, rng) -> (state, metrics)`` as ``(states, data, rngs, active) -> ...``:
    vmapped over the stacked states and keys (``data`` shared); a model whose ``active`` flag
    is off keeps its state."""

    def many(state, data, rng, active):
        new, metrics = vmap(fn, in_axes=(0, None, 0))(state, data, rng)
        keep = lambda n, o: jnp.where(active.reshape(-1, *(1,) * (n.ndim - 1)), n, o)  # noqa: E731
        return jax.tree.map(keep, new, state), metrics

    return many


def split_metrics(metrics: Mapping[str, Any], prefix: str) -> list[dict[str, float]]:
    """Host metrics of K models (arrays of K) as K prefixed records."""
    flat = {name: np.asarray(v) for name, v in metrics.items()}
    k = len(next(iter(flat.values())))
    return [{prefix + name: float(v[i]) for name, v in flat.items()} for i in range(k)]


def learning_rates(state: TrainState) -> list[dict[str, float]]:
    """Each model's ``lr_scale`` and, where its optimizer exposes it (``make_optimizer``'s do,
    unless scheduled), the learning rate in effect: the optimizer's times ``lr_scale``."""
    scales = np.asarray(state.lr_scale)
    base = getattr(state.opt_state, "hyperparams", {}).get("learning_rate")
    base = None if base is None else np.asarray(base)
    return [{"lr_scale": float(s), **({} if base is None else {"learning_rate": float(base[i] * s)})}
            for i, s in enumerate(scales)]
