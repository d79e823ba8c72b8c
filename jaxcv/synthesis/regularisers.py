"""Priors that keep an optimised image natural: total variation ("continuity"), L2 ("dream"),
as terms on the network's input, and Gaussian blur, applied to the image between iterations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxcv.errors import UsageError
from jaxcv.synthesis.objectives import Probe


def total_variation(x: jax.Array, power: float = 1.25) -> jax.Array:
    """``sum((dy^2 + dx^2) ** power)`` of an ``(H, W, C)`` image over its first ``H-1`` rows and
    ``W-1`` columns, per channel: Keras' continuity / total-variation loss (``power`` 1.25)."""
    corner = x[:-1, :-1]
    dy = jnp.square(corner - x[1:, :-1])
    dx = jnp.square(corner - x[:-1, 1:])
    return jnp.sum((dy + dx) ** power)


def l2(x: jax.Array) -> jax.Array:
    """The summed square of ``x``."""
    return jnp.sum(jnp.square(x))


@struct.dataclass
class TotalVariation:
    """``total_variation`` of the network's input; ``power`` >= 1 keeps its gradient finite
    where neighbours are equal."""

    power: float = struct.field(pytree_node=False, default=1.25)
    layers = ()

    def __post_init__(self) -> None:
        if not self.power >= 1:
            raise UsageError(f"total variation power is {self.power}; use a power >= 1")

    def __call__(self, probe: Probe, unit: jax.Array) -> jax.Array:
        return total_variation(probe.image, self.power)


@struct.dataclass
class ImageL2:
    """``l2`` of the network's input (Keras deep dream's "dream" term: pixels stay moderate)."""

    layers = ()

    def __call__(self, probe: Probe, unit: jax.Array) -> jax.Array:
        return l2(probe.image)


def gaussian_blur(image: jax.Array, sigma: float) -> jax.Array:
    """An ``(H, W, C)`` image blurred by a Gaussian of ``sigma`` pixels (separable, truncated at
    3 sigma, edges reflected); Yosinski et al.'s (2015) regulariser for synthesised images."""
    radius = max(1, int(3 * sigma + 0.5))
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    kernel = jnp.exp(-0.5 * jnp.square(offsets / sigma))
    kernel = kernel / kernel.sum()
    for axis in (0, 1):
        size = image.shape[axis]
        pad = [(0, 0)] * image.ndim
        pad[axis] = (radius, radius)
        padded = jnp.pad(image, pad, mode="reflect")
        image = sum(k * jax.lax.slice_in_dim(padded, i, i + size, axis=axis) for i, k in enumerate(kernel))
    return image
