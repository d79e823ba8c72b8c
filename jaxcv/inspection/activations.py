"""What a layer makes of an image: the feature maps of any named layer, and each image's maps
as one mosaic."""

from __future__ import annotations

import functools
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcv.errors import UsageError
from jaxcv.inspection.batching import check_batch_size, map_batches
from jaxcv.inspection.grids import min_max, tile
from jaxcv.inspection.layers import Variables, feature, forward

MapScale = Literal["map", "image"]
"""``map``: every feature map stretched to [0, 1] on its own (the most detail); ``image``: one
stretch over all of an image's maps, so that strong and weak channels compare."""


@functools.partial(jax.jit, static_argnames=("model", "layer", "batch_size"))
def _activations(model: nn.Module, variables: Variables, images: jax.Array, layer: str | None,
                 batch_size: int) -> jax.Array:
    return map_batches(lambda x: feature(forward(model, variables, x)[1], layer), images, batch_size)


def activations(model: nn.Module, variables: Variables, images: jax.Array, layer: str, *,
                batch_size: int = 256) -> jax.Array:
    """The feature named ``layer`` (``conv1``, ``pool1``, ``fc1`` ...) for every image, in
    inference mode: ``(N, H, W, C)`` maps or ``(N, D)`` vectors, float32.  ``batch_size``
    images at a time within one compiled call."""
    check_batch_size(batch_size)
    return _activations(model, variables, jnp.asarray(images), layer, batch_size)


@functools.partial(jax.jit, static_argnames=("scale", "cols"))
def _grids(maps: jax.Array, scale: MapScale, cols: int | None) -> jax.Array:
    if scale not in ("map", "image"):
        raise UsageError(f"activation scale must be 'map' or 'image', got {scale!r}")
    channels = jnp.moveaxis(maps, -1, 1)[..., None]  # (N, C, H, W, 1)
    channels = min_max(channels, axes=(2, 3, 4) if scale == "map" else (1, 2, 3, 4))
    return jax.vmap(lambda c: tile(c, cols))(channels)


def activation_grid(maps: jax.Array, *, scale: MapScale = "map", cols: int | None = None) -> jax.Array:
    """``(N, H, W, C)`` feature maps as one grey mosaic per image ``(N, H', W', 1)`` in [0, 1],
    channel ``c`` in cell ``c`` row by row."""
    if maps.ndim != 4:
        raise UsageError(f"activation_grid needs (N, H, W, C) feature maps, got shape {tuple(maps.shape)}: "
                         "pick a convolutional layer")
    return _grids(maps, scale, cols)
