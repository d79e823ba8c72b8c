"""What the pretrained backbones (VGG, ResNet, DenseNet) share: the source's input
preprocessing, global pooling, a classifier top of any size, BatchNorm layers that can be
frozen, and layer names matched by prefix.

Parameters are flat, one entry per layer under the source framework's name (Keras'
``block4_conv2``, torchvision's ``layer4.1.conv2`` as ``layer4_1_conv2``), so a weight file
maps onto them name by name and a trainable set is a list of names or prefixes.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcv.errors import UsageError
from jaxcv.models.layers import Dropout, batch_norm
from jaxcv.models.preprocess import Preprocess, preprocess

Features = dict[str, jax.Array]
Pooling = Literal["avg", "max"] | None

glorot_uniform = nn.initializers.xavier_uniform()  # Keras' default kernel initializer


def layer_matches(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or continues it after a ``_`` or ``/``: ``block4`` matches
    ``block4_conv1`` and ``conv4_block1`` matches ``conv4_block1_0_bn`` but not ``conv4_block10_0_bn``."""
    return name == prefix or name.startswith((prefix + "_", prefix + "/"))


def global_pool(x: jax.Array, pooling: str) -> jax.Array:
    """``avg`` or ``max`` over the spatial axes of NHWC ``x``."""
    if pooling == "avg":
        return x.mean(axis=(1, 2))
    if pooling == "max":
        return x.max(axis=(1, 2))
    raise UsageError(f"pooling must be 'avg', 'max' or None, got {pooling!r}")


def dense_top(x: jax.Array, feats: Features, *, num_classes: int, hidden: Sequence[int], dropout_rate: float,
              train: bool, output: str, kernel_init: nn.initializers.Initializer) -> jax.Array:
    """Flatten (a map), hidden ReLU layers ``fc1``, ``fc2`` ... each followed by dropout, and the
    ``output`` logits.  Called inside a compact method, its layers belong to the calling module:
    a backbone's top and a ``jaxcv.transfer.Head`` on cached features share their names."""
    if x.ndim > 2:
        x = feats["flatten"] = x.reshape(x.shape[0], -1)
    for i, width in enumerate(hidden, start=1):
        x = feats[f"fc{i}"] = nn.relu(nn.Dense(width, kernel_init=kernel_init, name=f"fc{i}")(x))
        x = Dropout(dropout_rate, deterministic=not train)(x)
    logits = feats[output] = nn.Dense(num_classes, kernel_init=kernel_init, name=output)(x)
    return logits


class Backbone(nn.Module):
    """A pretrained architecture: float RGB images in [0, 1], NHWC, to ``(outputs, features)``.

    ``include_top``: the classifier (hidden ``top`` layers, then ``num_classes`` logits);
    without it the output is the last feature map, or its global ``pooling`` (``avg`` /
    ``max``), as Keras' ``include_top=False``.  With the top, ``pooling`` decides how the
    top sees the last map (``None``: as the source does, ``top_pooling``).  ``preprocess``
    is applied to the input first (``jaxcv.models.preprocess``); it defaults to what the
    source's weights expect.  ``features`` names every layer's output.
    """

    num_classes: int = 1000
    include_top: bool = True
    pooling: Pooling = None
    top: Sequence[int] = ()
    dropout_rate: float = 0.0
    preprocess: Preprocess = "none"

    family: ClassVar[str]
    """``vgg``, ``resnet`` or ``densenet``: which weight files fit (``jaxcv.transfer.weights``)."""
    output_name: ClassVar[str] = "predictions"
    top_pooling: ClassVar[Pooling] = "avg"
    dense_init: ClassVar[nn.initializers.Initializer] = staticmethod(glorot_uniform)

    @property
    def arch(self) -> str:
        """The architecture's name, e.g. ``vgg16``."""
        return f"{self.family}{self.depth}"

    def head_layers(self) -> tuple[str, ...]:
        """The top's layers, in order (none without ``include_top``)."""
        if not self.include_top:
            return ()
        return (*(f"fc{i}" for i in range(1, len(self.top) + 1)), self.output_name)

    def _input(self, x: jax.Array) -> jax.Array:
        return preprocess(x, self.preprocess)

    def _output(self, x: jax.Array, feats: Features, train: bool) -> tuple[jax.Array, Features]:
        """The last feature map through the pooling and the top."""
        pooling = self.pooling if self.pooling is not None or not self.include_top else self.top_pooling
        if pooling is not None:
            x = feats[f"{pooling}_pool"] = global_pool(x, pooling)
        if not self.include_top:
            return x, feats
        return dense_top(x, feats, num_classes=self.num_classes, hidden=self.top, dropout_rate=self.dropout_rate,
                         train=train, output=self.output_name, kernel_init=self.dense_init), feats


class BatchNormBackbone(Backbone):
    """A backbone with BatchNorm layers, with the source's epsilon and momentum.

    ``frozen`` names layers (or prefixes, see ``layer_matches``) whose BatchNorm runs in
    inference mode even when training, so that its statistics never change: Keras'
    behaviour for a layer with ``trainable=False``, and what ``jaxcv.train.freeze`` sets for
    the layers it freezes.
    """

    frozen: Sequence[str] = ()

    bn_epsilon: ClassVar[float]
    bn_momentum: ClassVar[float]
    """Flax's momentum: the running average keeps this fraction (PyTorch's 0.1 is flax's 0.9)."""

    def _batchnorm(self, x: jax.Array, name: str, train: bool) -> jax.Array:
        frozen = any(layer_matches(name, prefix) for prefix in self.frozen)
        return batch_norm(train and not frozen, name, self.bn_epsilon, self.bn_momentum)(x)


def pad(x: jax.Array, pixels: int) -> jax.Array:
    """Zero-pad the spatial axes of NHWC ``x`` by ``pixels`` a side (Keras' ``ZeroPadding2D``,
    PyTorch's conv ``padding``)."""
    return jnp.pad(x, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)))
