"""Report 003's CIFAR-10 nets: the LeNet-style baseline and its Models 1 and 2 (Table 2).

Convolutions are 5x5 with padding 2 (LeNet, Model 2) or 3x3 same-padded (Model 1; the report
gives no kernel size), each max-pool halves the map, and with ``xavier`` every kernel is
Glorot-uniform (PyTorch's ``xavier_uniform_``) with zero biases, as the report initialised
Models 1 and 2.  ``Dropout2d`` drops whole channels.  BatchNorm uses PyTorch's momentum 0.1.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jaxcv.models.layers import Conv, Dropout, Features, batch_norm, max_pool


def _init(xavier: bool) -> dict:
    return {"kernel_init": nn.initializers.xavier_uniform()} if xavier else {}


class LeNet(nn.Module):
    """conv 32, 64, 128 (5x5, pad 2, ReLU, pool), dense 64, dense 10: 390,410 parameters."""

    num_classes: int = 10
    xavier: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        feats: Features = {}
        for i, f in enumerate((32, 64, 128), start=1):
            x = feats[f"conv{i}"] = nn.relu(Conv(f, (5, 5), name=f"conv{i}", **_init(self.xavier))(x))
            x = feats[f"pool{i}"] = max_pool(x)
        x = x.reshape(x.shape[0], -1)
        x = feats["fc1"] = nn.relu(nn.Dense(64, name="fc1", **_init(self.xavier))(x))
        return nn.Dense(self.num_classes, name="fc2", **_init(self.xavier))(x), feats


class LeNetModel1(nn.Module):
    """Model 1: conv 32 | conv 64, 128 | conv 256, 512 (3x3, each group ends in BatchNorm and a
    pool; Dropout2d 0.1 after the first conv), dense 2048, dense 64, BatchNorm, dense 10."""

    num_classes: int = 10
    dropout_rate: float | jax.Array = 0.1
    xavier: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        feats: Features = {}
        init = _init(self.xavier)
        convs = 0
        for group, widths in enumerate(((32,), (64, 128), (256, 512)), start=1):
            for f in widths:
                convs += 1
                name = f"conv{convs}"
                x = feats[name] = nn.relu(Conv(f, (3, 3), name=name, **init)(x))
                if group == 1:
                    x = Dropout(self.dropout_rate, deterministic=not train, broadcast_dims=(1, 2))(x)
            x = batch_norm(train, f"bn{group}")(x)
            x = feats[f"pool{group}"] = max_pool(x)
        x = x.reshape(x.shape[0], -1)
        x = feats["fc1"] = nn.relu(nn.Dense(2048, name="fc1", **init)(x))
        x = nn.relu(nn.Dense(64, name="fc2", **init)(x))
        x = feats["fc2"] = batch_norm(train, "bn_fc2")(x)
        return nn.Dense(self.num_classes, name="fc3", **init)(x), feats


class LeNetModel2(nn.Module):
    """Model 2: LeNet with BatchNorm before every ReLU and Dropout2d 0.1 after the first conv."""

    num_classes: int = 10
    dropout_rate: float | jax.Array = 0.1
    xavier: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        feats: Features = {}
        init = _init(self.xavier)
        for i, f in enumerate((32, 64, 128), start=1):
            x = Conv(f, (5, 5), name=f"conv{i}", **init)(x)
            if i == 1:
                x = Dropout(self.dropout_rate, deterministic=not train, broadcast_dims=(1, 2))(x)
            x = feats[f"conv{i}"] = nn.relu(batch_norm(train, f"bn{i}")(x))
            x = feats[f"pool{i}"] = max_pool(x)
        x = x.reshape(x.shape[0], -1)
        x = feats["fc1"] = nn.relu(batch_norm(train, "bn_fc1")(nn.Dense(64, name="fc1", **init)(x)))
        return nn.Dense(self.num_classes, name="fc2", **init)(x), feats
