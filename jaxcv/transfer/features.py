"""Feature extraction: run a frozen backbone once over a set of images and keep what its top
would see, on the device, to train a head on for many epochs (report 001 trained its VGG16
head 350 epochs) at the cost of a few dense layers per epoch."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcv.models.backbone import Backbone
from jaxcv.models.layers import ConvImpl, conv_impl, use_conv_impl
from jaxcv.train.evaluation import BATCHES_PER_CALL, batch_groups, map_group, ungroup
from jaxcv.train.losses import to_float

Variables = dict[str, Any]


def feature_model(model: Backbone) -> Backbone:
    """``model`` without its top, its output what the top takes (pooled as the top pools)."""
    pooling = model.pooling if model.pooling is not None or not model.include_top else model.top_pooling
    return model.clone(include_top=False, pooling=pooling)


def extract_features(model: Backbone, variables: Variables, images: np.ndarray | jax.Array,
                     batch_size: int = 64, batches_per_call: int = BATCHES_PER_CALL) -> jax.Array:
    """The input of ``model``'s top for every image (uint8 or float in [0, 1], NHWC), computed
    in inference mode, ``batches_per_call`` batches of ``batch_size`` per compiled call (the last
    ones padded), as one device array.  Train ``head_of(model)`` on it, then ``merge_head``."""
    backbone = feature_model(model)
    head = set(model.head_layers())
    variables = {**variables, "params": {k: v for k, v in variables["params"].items() if k not in head}}
    conv = conv_impl()
    out = [_features(backbone, variables, jnp.asarray(group), count, conv)
           for group, count in batch_groups(images, batch_size, batches_per_call)]
    return ungroup(out, len(images))


@functools.partial(jax.jit, static_argnums=(0, 4))
def _features(backbone: Backbone, variables: Variables, group: jax.Array, count: jax.Array,
              conv: ConvImpl) -> jax.Array:
    """One group's features; compiled once per backbone, group shape and formulation (each split
    of a study reuses the program, and a ``use_conv_impl`` block gets its own)."""
    with use_conv_impl(conv):
        return map_group(lambda images: backbone.apply(variables, to_float(images), train=False)[0], group, count)
