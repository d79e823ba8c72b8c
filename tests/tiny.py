"""A CNN for tests about how training runs, not what it learns: few parameters, a short
compile, and dropout (a rate ``fit_many`` can vary per model), so that each example must meet the
same mask however the batch is split."""

import flax.linen as nn

from jaxcv.models.layers import Conv, Dropout


class TinyCNN(nn.Module):
    dropout_rate: float = 0.25

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.relu(Conv(8, (3, 3), strides=(2, 2))(x)).reshape(len(x), -1)
        return nn.Dense(10)(Dropout(self.dropout_rate, deterministic=not train)(x)), {}
