"""Convolution filters as images: one layer's kernels as a mosaic, in colour or one input
channel at a time, and the same layer at two points of training side by side."""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from jaxcv.errors import UsageError
from jaxcv.inspection.grids import min_max, symmetric, tile
from jaxcv.inspection.layers import Variables, conv_kernel

Scale = Literal["layer", "filter"]
"""``layer``: zero is mid-grey and the layer's largest ``|w|`` black or white, so brighter is a
higher weight and filters compare with each other; ``filter``: each filter stretched to
[0, 1] on its own, for the most contrast."""


class FilterChange(NamedTuple):
    """One conv layer at two sets of variables: both mosaics on one scale, and per filter the
    Euclidean ``distance`` it moved and that distance over its norm before (``relative``)."""

    before: jax.Array
    after: jax.Array
    distance: jax.Array
    relative: jax.Array


def _images(kernels: jax.Array, scale: Scale) -> jax.Array:
    """``(..., kh, kw, in, out)`` kernels as ``(..., out, kh, kw, in)`` images in [0, 1]; ``layer``
    scaling spans every kernel given (all leading axes)."""
    images = jnp.moveaxis(kernels, -1, -4)
    if scale == "layer":
        return symmetric(images)
    if scale == "filter":
        return min_max(images, axes=(-3, -2, -1))
    raise UsageError(f"filter scale must be 'layer' or 'filter', got {scale!r}")


def _mosaic(images: jax.Array, per_channel: bool, cols: int | None) -> jax.Array:
    """``(out, kh, kw, in)`` filter images as one mosaic ``(H, W, in)``, or with ``per_channel``
    one grey mosaic per input channel ``(in, H, W, 1)``."""
    if per_channel:
        return jax.vmap(lambda c: tile(c[..., None], cols), in_axes=3)(images)
    if images.shape[-1] not in (1, 3):
        raise UsageError(f"filters with {images.shape[-1]} input channels are neither grey nor RGB; "
                         "show them one input channel at a time (per_channel=True)")
    return tile(images, cols)


@functools.partial(jax.jit, static_argnames=("scale", "per_channel", "cols"))
def _grid(kernel: jax.Array, scale: Scale, per_channel: bool, cols: int | None) -> jax.Array:
    return _mosaic(_images(kernel, scale), per_channel, cols)


def filter_grid(variables: Variables, layer: str, *, scale: Scale = "layer", per_channel: bool = False,
                cols: int | None = None) -> jax.Array:
    """The kernels of conv ``layer`` as one mosaic in [0, 1], filter ``i`` in cell ``i`` row by
    row: ``(H, W, 3)`` in colour for an RGB input, ``(H, W, 1)`` for a grey one; with
    ``per_channel``, one grey mosaic per input channel ``(in, H, W, 1)`` on the same scale (the
    red, green and blue parts of a first layer; any layer's kernels)."""
    return _grid(conv_kernel(variables, layer), scale, per_channel, cols)


@functools.partial(jax.jit, static_argnames=("scale", "per_channel", "cols"))
def _change(before: jax.Array, after: jax.Array, scale: Scale, per_channel: bool, cols: int | None) -> FilterChange:
    images = _images(jnp.stack([before, after]), scale)
    flat_before = before.reshape(-1, before.shape[-1])
    distance = jnp.linalg.norm(after.reshape(flat_before.shape) - flat_before, axis=0)
    norm = jnp.linalg.norm(flat_before, axis=0)
    return FilterChange(_mosaic(images[0], per_channel, cols), _mosaic(images[1], per_channel, cols),
                        distance, distance / jnp.where(norm > 0, norm, 1.0))


def filter_change(before: Variables, after: Variables, layer: str, *, scale: Scale = "layer",
                  per_channel: bool = False, cols: int | None = None) -> FilterChange:
    """Conv ``layer`` at two sets of variables (first and last epoch): mosaics as ``filter_grid``
    draws them, with ``layer`` scaling shared by both so that a brighter cell is a larger weight
    in either, and how far each filter moved."""
    kernel_before, kernel_after = conv_kernel(before, layer), conv_kernel(after, layer)
    if kernel_before.shape != kernel_after.shape:
        raise UsageError(f"conv layer {layer!r} has kernels of shape {kernel_before.shape} and {kernel_after.shape}: "
                         "compare variables of the same model")
    return _change(kernel_before, kernel_after, scale, per_channel, cols)
