"""Run by test_parallel.py in a process with 4 simulated CPU devices; prints JSON.

- ``histories``: the same short fit of ``TinyCNN`` (dropout on) on 1 and on 4 devices;
- ``many``: two models vmapped by ``fit_many`` (different seeds and dropout), on 1 and 4 devices;
- ``bn_gap``: BatchNorm's train-mode output on a batch split over 4 devices against the
  same batch on 1 device (global-batch statistics make it float noise), and ``bn_local_gap``
  what per-device statistics would have given instead.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from jaxcv.data import load_split
from jaxcv.models import get_model
from jaxcv.train import data_mesh, fit, fit_many, make_optimizer
from jaxcv.train.parallel import batch_sharded, put_replicated
from tiny import TinyCNN

data_dir = sys.argv[1]
# 4 steps an epoch: few enough that the rounding of 1 and 4 devices, which training amplifies
# step by step, stays far below the tolerances (with 512, cifar_cnn reached them by the third epoch)
train = {k: v[:256] for k, v in load_split("shapes/cifar", "train", data_dir).items()}
test = {k: v[:200] for k, v in load_split("shapes/cifar", "test", data_dir).items()}
out = {"devices": len(jax.devices()), "histories": {}, "many": {}}
for n in (1, 4):
    result = fit(TinyCNN(), train, test, optimizer=make_optimizer("sgd", 0.01, momentum=0.9),
                 epochs=3, batch_size=64, eval_batch_size=64, seed=0, mesh=data_mesh(jax.devices()[:n]),
                 progress=False)
    out["histories"][n] = result.history
    results = fit_many(TinyCNN(), train, test, seeds=[0, 1], hparams={"dropout_rate": [0.25, 0.1]},
                       optimizer=make_optimizer("sgd", 0.01, momentum=0.9), epochs=2, batch_size=64,
                       eval_batch_size=64, mesh=data_mesh(jax.devices()[:n]), progress=False)
    out["many"][n] = [r.history for r in results]

model = get_model("cifar_cnn", batchnorm=True, dropout_rate=0.0)
x = jnp.asarray(train["image"][:64], jnp.float32) / 255
variables = model.init(jax.random.key(0), x)
forward = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"])[0][0])
one = np.asarray(forward(variables, x))
mesh = data_mesh()
four = np.asarray(forward(put_replicated(variables, mesh), jax.device_put(x, batch_sharded(mesh))))
local = np.concatenate([np.asarray(forward(variables, x[i : i + 16])) for i in range(0, 64, 16)])
out["bn_gap"] = float(np.abs(one - four).max())
out["bn_local_gap"] = float(np.abs(one - local).max())
print(json.dumps(out))
