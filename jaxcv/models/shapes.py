"""Report 004's networks for the 72x72 generated shapes: three classifiers, a vertex regressor
and the denoising hourglass.

Like the other models each maps float images ``(N, H, W, C)`` to ``(outputs, features)``.
The classifiers follow the report's Keras code, where a layer without an ``activation`` is
linear: their only non-linearities are the max-pools (and the softmax in the loss).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from jaxcv.models.layers import Conv, Dropout, Features, batch_norm, max_pool, upsample


KERAS_EPSILON = 1e-3
"""The report's Keras BatchNorm epsilon."""


class ShapesLinear(nn.Module):
    """One dense layer on the flattened image (softmax in the loss): 72·72·3 + 3 = 15,555
    parameters.  ``fc1``'s kernel column k, seen as an image, is class k's template."""

    num_classes: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        return nn.Dense(self.num_classes, name="fc1")(x.reshape(x.shape[0], -1)), {}


class ShapesShallowCNN(nn.Module):
    """The report's "suggested CNN": conv 16 5x5 (valid, linear), max-pool, flatten, dense 3."""

    num_classes: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        feats: Features = {}
        x = feats["conv1"] = Conv(16, (5, 5), padding="VALID", name="conv1")(x)
        x = feats["pool1"] = max_pool(x)
        return nn.Dense(self.num_classes, name="fc1")(x.reshape(x.shape[0], -1)), feats


class ShapesDeepCNN(nn.Module):
    """The report's deeper CNN: conv 16 5x5, max-pool, conv 16 5x5, BatchNorm, global max-pool,
    dense 16, dropout 0.4, dense 3 (convs and ``fc1`` linear, as in the report)."""

    num_classes: int = 3
    dropout_rate: float | jax.Array = 0.4

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        feats: Features = {}
        x = feats["conv1"] = Conv(16, (5, 5), padding="VALID", name="conv1")(x)
        x = feats["pool1"] = max_pool(x)
        x = Conv(16, (5, 5), padding="VALID", name="conv2")(x)
        x = feats["conv2"] = batch_norm(train, "bn2", KERAS_EPSILON)(x)
        x = feats["global_pool"] = x.max(axis=(1, 2))
        x = feats["fc1"] = nn.Dense(16, name="fc1")(x)
        x = Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="fc2")(x), feats


class VertexRegressor(nn.Module):
    """A CNN regressing a triangle's vertices ``(x0, y0, ..., x2, y2)`` in [0, 1]: 3x3 same
    convs (ReLU, BatchNorm), each stage max-pooled, then dense ``dense_features`` and a linear
    dense 6.  Small and regularised where the report's 8-million-parameter net overfit."""

    conv_features: Sequence[int] = (16, 32, 64, 64)
    dense_features: int = 128
    dropout_rate: float | jax.Array = 0.2
    outputs: int = 6

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        feats: Features = {}
        for i, f in enumerate(self.conv_features, start=1):
            x = Conv(f, (3, 3), use_bias=False, name=f"conv{i}")(x)
            x = feats[f"conv{i}"] = nn.relu(batch_norm(train, f"bn{i}", KERAS_EPSILON)(x))
            x = feats[f"pool{i}"] = max_pool(x)
        x = x.reshape(x.shape[0], -1)
        x = feats["fc1"] = nn.relu(nn.Dense(self.dense_features, name="fc1")(x))
        x = Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.outputs, name="fc2")(x), feats


class Hourglass(nn.Module):
    """The report's denoising autoencoder: 32-filter 3x3 same ReLU convs, max-pool x3 (72 → 9),
    a conv and BatchNorm, then nearest up-sampling x3, each followed by a conv, the last
    one to a single channel.  Returns logits: ``sigmoid`` gives the image."""

    features: int = 32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        feats: Features = {}

        def conv(x: jax.Array, name: str, features: int | None = None) -> jax.Array:
            return Conv(features or self.features, (3, 3), name=name)(x)

        for i in range(1, 4):
            x = feats[f"conv{i}"] = nn.relu(conv(x, f"conv{i}"))
            x = max_pool(x)
        x = nn.relu(conv(x, "conv4"))
        x = feats["code"] = batch_norm(train, "bn4", KERAS_EPSILON)(x)
        for i in range(5, 7):
            x = feats[f"conv{i}"] = nn.relu(conv(upsample(x), f"conv{i}"))
        return conv(upsample(x), "conv7", 1), feats
