"""A CNN for tests about how training runs, not what it learns: few parameters, a short
compile, dropout (a rate ``fit_many`` can vary per model), so that each example must meet the
same mask however the batch is split, and BatchNorm if asked."""

import flax.linen as nn

from jaxcv.models.layers import Conv, Dropout, batch_norm


class TinyCNN(nn.Module):
    dropout_rate: float = 0.25
    batchnorm: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        x = Conv(8, (3, 3), strides=(2, 2), name="conv1")(x)
        if self.batchnorm:
            x = batch_norm(train, "conv1_bn")(x)
        x = nn.relu(x).reshape(len(x), -1)
        return nn.Dense(10, name="fc")(Dropout(self.dropout_rate, deterministic=not train)(x)), {}
