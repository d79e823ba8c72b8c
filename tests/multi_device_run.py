"""Run by test_parallel.py in a process with 4 simulated CPU devices: the same short fit on
1 and on 4 devices, histories printed as JSON."""

import json
import sys

import jax

from jaxcv.data import load_split
from jaxcv.models import get_model
from jaxcv.train import data_mesh, fit, make_optimizer

data_dir = sys.argv[1]
train = {k: v[:512] for k, v in load_split("shapes/cifar", "train", data_dir).items()}
test = {k: v[:200] for k, v in load_split("shapes/cifar", "test", data_dir).items()}
out = {"devices": len(jax.devices())}
for n in (1, 4):
    result = fit(get_model("cifar_cnn", batchnorm=True), train, test, optimizer=make_optimizer("adam", 1e-3),
                 epochs=2, batch_size=64, eval_batch_size=64, seed=0, mesh=data_mesh(jax.devices()[:n]),
                 progress=False)
    out[n] = result.history
print(json.dumps(out))
