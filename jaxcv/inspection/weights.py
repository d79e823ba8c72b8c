"""Weight statistics per layer: histograms of the weights, and of how they changed between two
sets of variables (first and last epoch)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxcv.errors import UsageError
from jaxcv.inspection.layers import Variables


class Histogram(NamedTuple):
    """``counts`` of values in ``bins`` equal bins between ``edges[0]`` (the least value) and
    ``edges[-1]`` (the largest)."""

    counts: jax.Array
    edges: jax.Array


def _flat_params(variables: Variables) -> dict[str, jax.Array]:
    """Every parameter array by its path (``conv1/kernel``, ``fc1/bias`` ...)."""
    return traverse_util.flatten_dict(dict(variables["params"]), sep="/")


@functools.partial(jax.jit, static_argnames=("bins",))
def _histograms(arrays: dict[str, jax.Array], bins: int) -> dict[str, Histogram]:
    return {path: Histogram(*jnp.histogram(a, bins=bins)) for path, a in arrays.items()}


def _check_bins(bins: int) -> None:
    if bins < 1:
        raise UsageError(f"histograms need >= 1 bin, got {bins}")


def weight_histograms(variables: Variables, *, bins: int = 50) -> dict[str, Histogram]:
    """A histogram of each parameter array (``conv1/kernel`` ...) of ``variables``."""
    _check_bins(bins)
    return _histograms(_flat_params(variables), bins)


def _check_same_layers(before: dict[str, jax.Array], after: dict[str, jax.Array]) -> None:
    shapes = ({k: jnp.shape(v) for k, v in params.items()} for params in (before, after))
    if next(shapes) != next(shapes):
        raise UsageError("the two sets of variables have different layers or shapes: compare variables of one model")


def change_histograms(before: Variables, after: Variables, *, bins: int = 50) -> dict[str, Histogram]:
    """A histogram of each parameter array's change, ``after - before``."""
    _check_bins(bins)
    flat_before, flat_after = _flat_params(before), _flat_params(after)
    _check_same_layers(flat_before, flat_after)
    return _histograms(jax.tree.map(jnp.subtract, flat_after, flat_before), bins)


@jax.jit
def _relative_change(before: dict[str, jax.Array], after: dict[str, jax.Array]) -> dict[str, jax.Array]:
    return {path: jnp.linalg.norm(after[path] - b) / jnp.maximum(jnp.linalg.norm(b), 1e-12)
            for path, b in before.items()}


def relative_change(before: Variables, after: Variables) -> dict[str, jax.Array]:
    """How far each parameter array moved: ``‖after − before‖ / ‖before‖`` (Frobenius norms)."""
    flat_before, flat_after = _flat_params(before), _flat_params(after)
    _check_same_layers(flat_before, flat_after)
    return _relative_change(flat_before, flat_after)
