"""Many small images (filters, feature maps) as one mosaic image, and the scalings that make
their values visible."""

from __future__ import annotations

import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp


@functools.partial(jax.jit, static_argnames=("cols", "pad", "fill"))
def tile(images: jax.Array, cols: int | None = None, pad: int = 1, fill: float = 1.0) -> jax.Array:
    """``(n, h, w, c)`` images as one ``(rows·(h + pad) − pad, cols·(w + pad) − pad, c)`` mosaic,
    row by row, ``pad`` pixels of ``fill`` between cells and in the cells past ``n``;
    ``cols`` defaults to about square."""
    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cells = jnp.full((rows * cols, h + pad, w + pad, c), fill, images.dtype)
    cells = cells.at[:n, :h, :w].set(images)
    mosaic = cells.reshape(rows, cols, h + pad, w + pad, c).transpose(0, 2, 1, 3, 4)
    return mosaic.reshape(rows * (h + pad), cols * (w + pad), c)[: rows * (h + pad) - pad, : cols * (w + pad) - pad]


def symmetric(x: jax.Array, axes: Sequence[int] | None = None) -> jax.Array:
    """``x`` into [0, 1] with zero at 0.5 and the largest ``|x|`` over ``axes`` (default: all)
    at 0 or 1: signs and relative sizes stay readable."""
    top = jnp.abs(x).max(axis=None if axes is None else tuple(axes), keepdims=True)
    return 0.5 + x / (2 * jnp.where(top > 0, top, 1.0))


def min_max(x: jax.Array, axes: Sequence[int] | None = None) -> jax.Array:
    """``x`` stretched to [0, 1] over ``axes`` (default: all): most contrast; constant parts 0."""
    axes = None if axes is None else tuple(axes)
    lo, hi = x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True)
    return (x - lo) / jnp.where(hi > lo, hi - lo, 1.0)

