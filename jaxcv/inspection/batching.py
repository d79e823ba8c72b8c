"""Running a function over many images in fixed-size batches inside one compiled program."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxcv.errors import UsageError


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")


def map_batches(fn: Callable[[Any], Any], xs: Any, batch_size: int) -> Any:
    """``fn`` over the leading axis of the pytree ``xs`` in batches of ``batch_size``, as one
    ``lax.map``: however many examples there are, ``fn`` is traced and compiled once and only
    one batch's intermediates are alive at a time.

    The last batch is padded with copies of the last example (valid inputs, so nothing
    non-finite appears) and the padding is cut from the result.  ``fn`` maps a batch to a
    pytree of arrays whose leading axis is the batch.
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    batch_size = min(batch_size, n)
    pad = -n % batch_size

    def split(a: jax.Array) -> jax.Array:
        a = jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]) if pad else a
        return a.reshape(-1, batch_size, *a.shape[1:])

    out = jax.lax.map(fn, jax.tree.map(split, xs))
    return jax.tree.map(lambda o: o.reshape(-1, *o.shape[2:])[:n], out)
