"""ResNet18 and ResNet50 as torchvision builds them (He et al., 2016; torchvision's "v1.5":
a bottleneck block strides in its 3x3 conv).

Layer names are torchvision's with ``_`` for ``.`` (``layer4.1.conv2`` is ``layer4_1_conv2``,
a block's shortcut ``layer2.0.downsample.0`` / ``.1`` is ``layer2_0_downsample_0`` / ``_1``),
so its state dicts load name by name.  Convs pad like PyTorch (``size // 2`` a side, not
TensorFlow's ``SAME``, which differs for strided convs).  BatchNorm: epsilon 1e-5, PyTorch
momentum 0.1.  ResNet18 with its 1000-way ``fc`` has 11,689,512 parameters.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax

from jaxcv.errors import UsageError
from jaxcv.models.backbone import BatchNormBackbone, Features, pad
from jaxcv.models.layers import Conv, max_pool
from jaxcv.models.preprocess import Preprocess

RESNET_STAGES = {18: (False, (2, 2, 2, 2)), 50: (True, (3, 4, 6, 3))}
"""Per depth: bottleneck blocks or not, and the blocks of ``layer1`` ... ``layer4``."""
STAGE_WIDTHS = (64, 128, 256, 512)


class ResNet(BatchNormBackbone):
    """``conv1`` 7x7/2, ``bn1``, ReLU, ``maxpool`` 3x3/2, four stages of residual blocks
    (features ``layer{s}_{b}`` per block, ``layer{s}`` per stage), global average pool,
    ``fc``.  torchvision's initialisation and ``torch`` preprocessing by default."""

    depth: int = 18
    preprocess: Preprocess = "torch"

    family: ClassVar[str] = "resnet"
    output_name: ClassVar[str] = "fc"
    bn_epsilon: ClassVar[float] = 1e-5
    bn_momentum: ClassVar[float] = 0.9
    dense_init: ClassVar[nn.initializers.Initializer] = staticmethod(nn.initializers.variance_scaling(
        1 / 3, "fan_in", "uniform"))  # nn.Linear's kaiming_uniform(a=sqrt(5))

    def _conv_bn(self, x: jax.Array, features: int, size: int, stride: int, conv: str, bn: str,
                 feats: Features, train: bool) -> jax.Array:
        """A bias-free conv padded like PyTorch, then BatchNorm (no activation)."""
        layer = Conv(features, (size, size), padding="VALID", strides=stride, use_bias=False,
                     kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"), name=conv)
        x = feats[conv] = layer(pad(x, size // 2))
        x = feats[bn] = self._batchnorm(x, bn, train)
        return x

    def _block(self, x: jax.Array, width: int, stride: int, name: str, bottleneck: bool, feats: Features,
               train: bool) -> jax.Array:
        """A basic block (two 3x3 convs) or a bottleneck (1x1, 3x3, 1x1 to 4x the width)."""
        convs = ((width, 1, 1), (width, 3, stride), (4 * width, 1, 1)) if bottleneck else (
            (width, 3, stride), (width, 3, 1))
        y = x
        for i, (features, size, s) in enumerate(convs, start=1):
            y = self._conv_bn(y, features, size, s, f"{name}_conv{i}", f"{name}_bn{i}", feats, train)
            if i < len(convs):
                y = nn.relu(y)
        out = convs[-1][0]
        if stride != 1 or x.shape[-1] != out:
            x = self._conv_bn(x, out, 1, stride, f"{name}_downsample_0", f"{name}_downsample_1", feats, train)
        y = feats[name] = nn.relu(y + x)
        return y

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        if self.depth not in RESNET_STAGES:
            raise UsageError(f"ResNet depth must be one of {sorted(RESNET_STAGES)}, got {self.depth}")
        bottleneck, blocks = RESNET_STAGES[self.depth]
        feats: Features = {}
        x = self._conv_bn(self._input(x), 64, 7, 2, "conv1", "bn1", feats, train)
        x = feats["relu"] = nn.relu(x)
        x = feats["maxpool"] = max_pool(x, 3, stride=2, padding=1)
        for s, (width, count) in enumerate(zip(STAGE_WIDTHS, blocks), start=1):
            for b in range(count):
                stride = 2 if s > 1 and b == 0 else 1
                x = self._block(x, width, stride, f"layer{s}_{b}", bottleneck, feats, train)
            feats[f"layer{s}"] = x
        return self._output(x, feats, train)
