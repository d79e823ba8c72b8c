"""DenseNet121 as ``keras.applications`` builds it (Huang et al., 2017), with the number of
dense blocks to keep (report 002's block removal).

Layers and features carry Keras' names: ``conv1_conv``, ``pool1``, dense block ``b`` is
``conv{b+1}`` (``conv4_block7_1_conv`` ...), the transition after it ``pool{b+1}``
(``pool3_conv``, ``pool3_pool``), then ``bn`` and ``relu``.  BatchNorm: Keras' epsilon
1.001e-5 and momentum 0.99.  Without the top: 7,037,504 parameters and statistics (Keras'
count), 6,953,856 of them trainable.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcv.errors import UsageError
from jaxcv.models.backbone import BatchNormBackbone, Features, glorot_uniform, pad
from jaxcv.models.layers import Conv, avg_pool, max_pool
from jaxcv.models.preprocess import Preprocess

DENSENET_LAYERS = {121: (6, 12, 24, 16)}
"""Conv blocks in each of the four dense blocks."""
GROWTH_RATE = 32


class DenseNet(BatchNormBackbone):
    """Stem (7x7/2 conv, BatchNorm, ReLU, 3x3/2 max-pool), dense blocks whose conv blocks
    (BN-ReLU-1x1 conv to 128, BN-ReLU-3x3 conv to 32) concatenate their output to their
    input, transitions (BN-ReLU-1x1 conv halving the channels, 2x2 average pool) between them.

    ``blocks`` keeps the first 1-4 dense blocks; fewer than four cut the network after the
    transition that follows the last kept block (report 002: "cut the model in the
    transition block before the dense block we want to remove"; with an 8-way top, 3, 2 and
    1 blocks give 4.85 M, 1.45 M and 383 k parameters, the report's 5 M / 1.5 M / 380 k);
    a whole DenseNet's weights load into it with ``strict=False`` (the removed layers are
    listed as not in the model).  Keras' DenseNet expects ``torch`` preprocessing.
    """

    depth: int = 121
    blocks: int = 4
    preprocess: Preprocess = "torch"

    family: ClassVar[str] = "densenet"
    bn_epsilon: ClassVar[float] = 1.001e-5
    bn_momentum: ClassVar[float] = 0.99

    def _bn_relu(self, x: jax.Array, name: str, feats: Features, train: bool) -> jax.Array:
        x = feats[f"{name}_bn"] = self._batchnorm(x, f"{name}_bn", train)
        x = feats[f"{name}_relu"] = nn.relu(x)
        return x

    def _conv(self, x: jax.Array, features: int, size: int, name: str, feats: Features) -> jax.Array:
        layer = Conv(features, (size, size), padding="SAME", use_bias=False, kernel_init=glorot_uniform, name=name)
        x = feats[name] = layer(x)
        return x

    def _dense_block(self, x: jax.Array, layers: int, name: str, feats: Features, train: bool) -> jax.Array:
        for i in range(1, layers + 1):
            block = f"{name}_block{i}"
            y = self._bn_relu(x, f"{block}_0", feats, train)
            y = self._conv(y, 4 * GROWTH_RATE, 1, f"{block}_1_conv", feats)
            y = self._bn_relu(y, f"{block}_1", feats, train)
            y = self._conv(y, GROWTH_RATE, 3, f"{block}_2_conv", feats)
            x = feats[f"{block}_concat"] = jnp.concatenate([x, y], axis=-1)
        return x

    def _transition(self, x: jax.Array, name: str, feats: Features, train: bool) -> jax.Array:
        x = self._bn_relu(x, name, feats, train)
        x = self._conv(x, x.shape[-1] // 2, 1, f"{name}_conv", feats)
        x = feats[f"{name}_pool"] = avg_pool(x)
        return x

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        if self.depth not in DENSENET_LAYERS:
            raise UsageError(f"DenseNet depth must be one of {sorted(DENSENET_LAYERS)}, got {self.depth}")
        layers = DENSENET_LAYERS[self.depth]
        if not 1 <= self.blocks <= len(layers):
            raise UsageError(f"DenseNet blocks (dense blocks to keep) must be 1 to {len(layers)}, got {self.blocks}")
        feats: Features = {}
        stem = Conv(64, (7, 7), padding="VALID", strides=2, use_bias=False, kernel_init=glorot_uniform,
                    name="conv1_conv")
        x = feats["conv1_conv"] = stem(pad(self._input(x), 3))
        x = self._bn_relu(x, "conv1", feats, train)
        x = feats["pool1"] = max_pool(pad(x, 1), 3, stride=2)  # zeros never win after the ReLU
        for b in range(1, self.blocks + 1):
            x = self._dense_block(x, layers[b - 1], f"conv{b + 1}", feats, train)
            if b < len(layers):
                x = self._transition(x, f"pool{b + 1}", feats, train)
        if self.blocks == len(layers):
            x = feats["bn"] = self._batchnorm(x, "bn", train)
            x = feats["relu"] = nn.relu(x)
        return self._output(x, feats, train)
