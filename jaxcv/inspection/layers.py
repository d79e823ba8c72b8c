"""A model's layers by name: its named features (what it returns beside its outputs) and its
convolution kernels (its parameters), with a ``UsageError`` listing the valid names otherwise.

Every inspection function runs a model the same way: images (uint8 or float) as floats in
inference mode, one ``(outputs, features)`` pair back.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from jaxcv.errors import UsageError
from jaxcv.inspection.batching import check_batch_size, map_batches
from jaxcv.train.losses import to_float
from jaxcv.train.state import refusing_empty_inputs

Variables = Mapping[str, Any]


def forward(model: nn.Module, variables: Variables, images: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``model``'s outputs and named features for ``images`` in inference mode."""
    return model.apply(variables, to_float(images), train=False)


def softmax(model: nn.Module, variables: Variables, images: jax.Array) -> jax.Array:
    """A classifier's float32 probabilities for one batch of ``images``, in inference mode."""
    return jax.nn.softmax(forward(model, variables, images)[0].astype(jnp.float32), -1)


@functools.partial(jax.jit, static_argnames=("model", "batch_size"))
def _probabilities(model: nn.Module, variables: Variables, images: jax.Array, batch_size: int) -> jax.Array:
    return map_batches(lambda x: softmax(model, variables, x), images, batch_size)


def probabilities(model: nn.Module, variables: Variables, images: jax.Array, *, batch_size: int = 256) -> jax.Array:
    """``(N, classes)`` float32: a classifier's softmax probabilities for every image, in
    inference mode, ``batch_size`` images at a time within one compiled call."""
    check_batch_size(batch_size)
    return _probabilities(model, variables, jnp.asarray(images), batch_size)


def feature(features: Mapping[str, jax.Array], layer: str | None) -> jax.Array:
    """The feature named ``layer``; ``None`` is the last one the model names (a classifier's
    penultimate layer)."""
    if not features:
        raise UsageError("this model names no intermediate features; pick a model that returns them")
    if layer is None:
        return list(features.values())[-1]
    if layer not in features:
        raise UsageError(f"unknown layer {layer!r}; this model's named features are {', '.join(features)}")
    return features[layer]


def as_labels(labels: Any, images: jax.Array) -> jax.Array | None:
    """``labels`` as int32, one per image (``None`` stays: explain the predicted classes)."""
    if labels is None:
        return None
    labels = jnp.asarray(labels, jnp.int32)
    if labels.shape != images.shape[:1]:
        raise UsageError(f"give one label per image: {labels.shape} labels for {images.shape[0]} images")
    return labels


def class_scores(logits: jax.Array, labels: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """The classes to explain, ``labels`` or else the model's predictions, and their logits."""
    classes = jnp.argmax(logits, -1) if labels is None else jnp.asarray(labels, jnp.int32)
    return classes, jnp.take_along_axis(logits, classes[:, None], -1)[:, 0]


def conv_layers(variables: Variables) -> list[str]:
    """Paths (``conv1``, ``block2/conv1``) of the layers whose ``kernel`` is a 2-D convolution's."""
    flat = traverse_util.flatten_dict(dict(variables.get("params", {})), sep="/")
    return [path.rsplit("/", 1)[0] for path, value in flat.items()
            if path.endswith("kernel") and "/" in path and jnp.ndim(value) == 4]


def check_conv_layer(variables: Variables, layer: str) -> None:
    """A ``UsageError`` listing the conv layers unless ``layer`` is one."""
    if layer not in (names := conv_layers(variables)):
        raise UsageError(f"unknown conv layer {layer!r}; this model's conv layers are {', '.join(names) or 'none'}")


def check_layers(model: nn.Module, images: Any, *, conv_layer: str | None = None,
                 feature_name: str | None = None) -> None:
    """A ``UsageError`` for a ``conv_layer`` or ``feature_name`` that ``model`` lacks, found by
    tracing it on the shape of ``images`` (nothing computed): a study checks its ``--layer``
    before it trains the model, not after.  Without names, nothing to trace."""
    if conv_layer is None and feature_name is None:
        return
    sample = jax.ShapeDtypeStruct((1, *images.shape[1:]), images.dtype)
    with refusing_empty_inputs(model, sample.shape):
        (_, features), variables = jax.eval_shape(
            lambda x: model.init_with_output(jax.random.key(0), to_float(x), train=False), sample)
    if conv_layer is not None:
        check_conv_layer(variables, conv_layer)
    if feature_name is not None:
        feature(features, feature_name)


def conv_kernel(variables: Variables, layer: str) -> jax.Array:
    """The ``(kh, kw, in, out)`` kernel of convolution ``layer``."""
    check_conv_layer(variables, layer)
    params = variables["params"]
    for name in layer.split("/"):
        params = params[name]
    return params["kernel"]
