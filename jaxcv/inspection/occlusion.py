"""Occlusion sensitivity (Zeiler & Fergus 2014): how a classifier's probabilities change as a
grey patch slides over the image.  Where hiding a region hurts, the decision rests on it.

The patch should not stand out where it hides nothing: mid-grey on MNIST's black or on the
shapes' white background adds a blob of ink that the model may read as a stroke.  Zeiler and
Fergus' grey is the training set's mean; pass it as ``fill``.  Without it, each image's own mean
colour is used, which needs nothing else and does not depend on the batch, but on an image that
is half shape it is ink-dark."""

from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcv.errors import UsageError
from jaxcv.inspection.batching import check_batch_size, map_batches
from jaxcv.inspection.layers import Variables, as_labels, class_scores, softmax
from jaxcv.train.losses import to_float


class OcclusionMaps(NamedTuple):
    """Per image and patch position ``(N, P, Q)``, the probability of the explained class with
    the patch there (``true_prob``), the highest probability and its class (``top_prob``,
    ``top_class``); per image, the explained class (``classes``: the label, or the prediction
    on the clear image) and its probability without a patch (``clear_prob``)."""

    true_prob: jax.Array
    top_prob: jax.Array
    top_class: jax.Array
    clear_prob: jax.Array
    classes: jax.Array


def positions(size: int, patch: int, stride: int) -> jax.Array:
    """First pixels of the patch along an axis of ``size`` pixels: ``0, stride, ...`` while the
    patch fits."""
    return jnp.arange(0, size - patch + 1, stride)


@functools.partial(jax.jit, static_argnames=("model", "patch", "stride", "batch_size"))
def _occlusion(model: nn.Module, variables: Variables, images: jax.Array, labels: jax.Array | None,
               patch: int, stride: int, fill: jax.Array | None, batch_size: int) -> OcclusionMaps:
    images = to_float(images)
    n, h, w, _ = images.shape
    fill = images.mean(axis=(1, 2)) if fill is None else jnp.broadcast_to(fill, (n, images.shape[-1]))
    rows, cols = positions(h, patch, stride), positions(w, patch, stride)
    tops, lefts = (a.reshape(-1) for a in jnp.meshgrid(rows, cols, indexing="ij"))
    per_image = len(tops)

    probabilities = functools.partial(softmax, model, variables)
    clear = map_batches(probabilities, images, batch_size)
    classes, clear_prob = class_scores(clear, labels)

    def occluded(index: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        image, at = index // per_image, index % per_image
        inside_rows = (jnp.arange(h) >= tops[at][:, None]) & (jnp.arange(h) < tops[at][:, None] + patch)
        inside_cols = (jnp.arange(w) >= lefts[at][:, None]) & (jnp.arange(w) < lefts[at][:, None] + patch)
        hidden = inside_rows[:, :, None, None] & inside_cols[:, None, :, None]
        probs = probabilities(jnp.where(hidden, fill[image][:, None, None, :], images[image]))
        return class_scores(probs, classes[image])[1], probs.max(-1), jnp.argmax(probs, -1).astype(jnp.int32)

    true_prob, top_prob, top_class = (
        a.reshape(n, len(rows), len(cols)) for a in map_batches(occluded, jnp.arange(n * per_image), batch_size))
    return OcclusionMaps(true_prob, top_prob, top_class, clear_prob, classes)


def check_patch(image_shape: Sequence[int], patch: int, stride: int) -> None:
    """A ``UsageError`` unless a ``patch``-pixel square moved by ``stride`` fits images of
    ``image_shape`` (N, H, W, C)."""
    h, w = image_shape[1:3]
    if not 1 <= patch <= min(h, w):
        raise UsageError(f"occlusion patch must be 1 to {min(h, w)} pixels for {h}x{w} images, got {patch}")
    if stride < 1:
        raise UsageError(f"occlusion stride must be >= 1 pixel, got {stride}")


def occlusion(model: nn.Module, variables: Variables, images: jax.Array, labels: jax.Array | None = None, *,
              patch: int, stride: int, fill: float | Sequence[float] | None = None, batch_size: int = 256
              ) -> OcclusionMaps:
    """Slide a ``patch`` x ``patch`` square of ``fill`` over every image with ``stride``, and
    classify each occluded copy: ``P = (H - patch) // stride + 1`` rows by ``Q`` columns of
    positions.  ``fill`` is a value or one per channel on the [0, 1] image scale (0.5 is grey;
    best the training set's mean), by default each image's mean per channel.  ``labels`` are the classes to explain
    (default: the model's predictions on the clear images).  Every position of every image
    runs through one compiled call, ``batch_size`` occluded images at a time."""
    images = jnp.asarray(images)
    check_patch(images.shape, patch, stride)
    check_batch_size(batch_size)
    fill = None if fill is None else jnp.asarray(fill, jnp.float32)
    return _occlusion(model, variables, images, as_labels(labels, images), patch, stride, fill, batch_size)


@functools.partial(jax.jit, static_argnames=("stride",))
def worst_patches(true_prob: jax.Array, stride: int) -> jax.Array:
    """``(N, 2)``: the first pixel (row, column) of the patch position that lowers each image's
    class probability most, from ``OcclusionMaps.true_prob``."""
    q = true_prob.shape[2]
    at = jnp.argmin(true_prob.reshape(len(true_prob), -1), -1)
    return jnp.stack([at // q, at % q], -1) * stride


@functools.partial(jax.jit, static_argnames=("patch", "stride"))
def _coverage(mask: jax.Array, patch: int, stride: int) -> jax.Array:
    inside = jax.lax.reduce_window(mask.astype(jnp.float32), 0.0, jax.lax.add, (1, patch, patch), (1, stride, stride),
                                   "VALID")
    return inside / patch**2


def patch_coverage(mask: jax.Array, *, patch: int, stride: int) -> jax.Array:
    """``(N, P, Q)``: the fraction of the patch's pixels inside ``mask`` (``(N, H, W)``, true on
    an object) at each position of ``occlusion``'s maps; above 0 where the patch touches it."""
    mask = jnp.asarray(mask)
    if mask.ndim != 3:
        raise UsageError(f"patch_coverage needs (N, H, W) masks, got shape {tuple(mask.shape)}")
    if not 1 <= patch <= min(mask.shape[1:]) or stride < 1:
        raise UsageError(f"patch {patch} and stride {stride} do not fit {mask.shape[1]}x{mask.shape[2]} masks")
    return _coverage(mask, patch, stride)
