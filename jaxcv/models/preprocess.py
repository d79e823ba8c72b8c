"""The input conventions of pretrained weights, from jaxcv's images (RGB floats in [0, 1]).

Pretrained weights only work on inputs prepared as they were in training; report 000's VGG16
fine-tuning that would not learn is the classic symptom of getting this wrong.  The
backbones apply their source's convention themselves (field ``preprocess``), so they take
the same [0, 1] images as every jaxcv model; these functions are for code that feeds
prepared images elsewhere or turns optimised inputs back into pictures (deep dream, style).

- ``caffe`` (Keras' VGG16/VGG19, HED): BGR channel order, ImageNet channel means
  subtracted, pixels 0-255, no scaling.
- ``torch`` (torchvision, and Keras' DenseNet): RGB in [0, 1], minus the ImageNet mean,
  divided by its standard deviation, per channel.
- ``none``: the images as given.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from jaxcv.errors import UsageError

Preprocess = Literal["caffe", "torch", "none"]
PREPROCESS_MODES = ("caffe", "torch", "none")

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
"""ImageNet's channel means on the 0-255 scale, in BGR order, as Keras' ``caffe`` mode subtracts them."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check(mode: str) -> None:
    if mode not in PREPROCESS_MODES:
        raise UsageError(f"preprocess must be one of {', '.join(PREPROCESS_MODES)}, got {mode!r}")


def preprocess(images: jax.Array, mode: Preprocess) -> jax.Array:
    """NHWC RGB ``images`` in [0, 1] as weights trained with ``mode`` expect them."""
    _check(mode)
    if mode == "caffe":
        return images[..., ::-1] * 255.0 - jnp.asarray(CAFFE_MEAN_BGR, images.dtype)
    if mode == "torch":
        return (images - jnp.asarray(IMAGENET_MEAN, images.dtype)) / jnp.asarray(IMAGENET_STD, images.dtype)
    return images


def deprocess(inputs: jax.Array, mode: Preprocess) -> jax.Array:
    """The inverse of ``preprocess``: RGB images on the [0, 1] scale (not clipped)."""
    _check(mode)
    if mode == "caffe":
        return (inputs + jnp.asarray(CAFFE_MEAN_BGR, inputs.dtype))[..., ::-1] / 255.0
    if mode == "torch":
        return inputs * jnp.asarray(IMAGENET_STD, inputs.dtype) + jnp.asarray(IMAGENET_MEAN, inputs.dtype)
    return inputs
