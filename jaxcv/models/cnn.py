"""The small CNNs of reports 000 and 001.

Every model maps float images ``(N, H, W, C)`` to ``(logits, features)``, where
``features`` names intermediate activations (``conv1``, ``pool1``, ``fc1`` ...) for
visualisation and optimise-the-input methods; under ``jit`` unused ones cost nothing.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from jaxcv.models.layers import Conv, Dropout, Features, batch_norm, max_pool


class MnistCNN(nn.Module):
    """3x3 valid convs, one max-pool, dense 128, dense 10, dropout 0.25 / 0.5.

    Report 000's net is convs 32, 32, 16 (263,418 params); with convs 32, 32 it is report
    001's Keras ``mnist_cnn`` example (600,810 params).  ``dense_features`` lists the
    hidden dense layers (``fc1``, ``fc2`` ...), each followed by dropout 2 × ``dropout_rate``.
    """

    num_classes: int = 10
    conv_features: Sequence[int] = (32, 32, 16)
    dense_features: Sequence[int] = (128,)
    dropout_rate: float | jax.Array = 0.25

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        feats: Features = {}
        for i, f in enumerate(self.conv_features, start=1):
            x = feats[f"conv{i}"] = nn.relu(Conv(f, padding="VALID", name=f"conv{i}")(x))
        x = feats["pool1"] = max_pool(x)
        x = Dropout(self.dropout_rate, deterministic=not train)(x)
        x = x.reshape(x.shape[0], -1)
        for i, f in enumerate(self.dense_features, start=1):
            x = feats[f"fc{i}"] = nn.relu(nn.Dense(f, name=f"fc{i}")(x))
            x = Dropout(2 * self.dropout_rate, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, name=f"fc{len(self.dense_features) + 1}")(x)
        return logits, feats


class CifarCNN(nn.Module):
    """Report 001's CIFAR-10 net (Keras ``cifar10_cnn``), optionally with BatchNorm.

    conv 32 same, conv 32 valid, pool, conv 64 same, conv 64 valid, pool, dense 512,
    dense 10, dropout 0.25 / 0.25 / 0.5.  With ``batchnorm`` every conv and the hidden
    dense layer are followed by BatchNorm before the ReLU (and lose their bias).
    """

    num_classes: int = 10
    batchnorm: bool = False
    dense_features: int = 512
    dropout_rate: float | jax.Array = 0.25

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        feats: Features = {}

        def norm_relu(x: jax.Array, name: str) -> jax.Array:
            if self.batchnorm:
                x = batch_norm(train, f"{name}_bn")(x)
            feats[name] = nn.relu(x)
            return feats[name]

        for stage, (f, same, valid) in enumerate(((32, "conv1", "conv2"), (64, "conv3", "conv4")), 1):
            for name, padding in ((same, "SAME"), (valid, "VALID")):
                conv = Conv(f, padding=padding, use_bias=not self.batchnorm, name=name)
                x = norm_relu(conv(x), name)
            x = feats[f"pool{stage}"] = max_pool(x)
            x = Dropout(self.dropout_rate, deterministic=not train)(x)
        x = x.reshape(x.shape[0], -1)
        x = norm_relu(nn.Dense(self.dense_features, use_bias=not self.batchnorm, name="fc1")(x), "fc1")
        x = Dropout(2 * self.dropout_rate, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, name="fc2")(x)
        return logits, feats
