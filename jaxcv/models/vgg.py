"""VGG16 and VGG19 as ``keras.applications`` builds them (Simonyan & Zisserman, 2015).

Layers and features carry Keras' names (``block4_conv2``); every conv's output is also
reachable under the paper's name (``conv4_2``), which the style-transfer and deep-dream
literature uses, and before its ReLU as ``conv4_2_pre_relu`` (``block4_conv2_pre_relu``): a
unit that is zero on an image still has a gradient there, which activation maximisation needs.  Without the top VGG16 has 14,714,688 parameters.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import flax.linen as nn
import jax

from jaxcv.errors import UsageError
from jaxcv.models.backbone import Backbone, Features, Pooling, glorot_uniform
from jaxcv.models.layers import Conv, max_pool
from jaxcv.models.preprocess import Preprocess

VGG_CONVS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
"""Convolutions per block; the blocks have 64, 128, 256, 512 and 512 filters."""
VGG_WIDTHS = (64, 128, 256, 512, 512)


class VGG(Backbone):
    """3x3 ReLU convs in five blocks, each closed by a 2x2 max-pool (``block{b}_pool``);
    the top flattens the last map (224 px inputs: 7x7x512) into ``fc1``, ``fc2`` (4096 each)
    and ``predictions``.  Keras' ``caffe`` preprocessing by default."""

    depth: int = 16
    top: Sequence[int] = (4096, 4096)
    preprocess: Preprocess = "caffe"

    family: ClassVar[str] = "vgg"
    top_pooling: ClassVar[Pooling] = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        if self.depth not in VGG_CONVS:
            raise UsageError(f"VGG depth must be one of {sorted(VGG_CONVS)}, got {self.depth}")
        feats: Features = {}
        x = self._input(x)
        for b, (convs, width) in enumerate(zip(VGG_CONVS[self.depth], VGG_WIDTHS), start=1):
            for i in range(1, convs + 1):
                conv = Conv(width, (3, 3), kernel_init=glorot_uniform, name=f"block{b}_conv{i}")
                x = feats[f"block{b}_conv{i}_pre_relu"] = feats[f"conv{b}_{i}_pre_relu"] = conv(x)
                x = feats[f"block{b}_conv{i}"] = feats[f"conv{b}_{i}"] = nn.relu(x)
            x = feats[f"block{b}_pool"] = max_pool(x)
        return self._output(x, feats, train)
