"""Run by test_parallel.py as every process of a job (``jaxcv.local_cluster``): 1 process of 4
simulated CPU devices, or 2 of 2.  Process 0 prints JSON.

``python multi_process_run.py DATA_DIR OUT MODE``:

- ``train``: ``fit`` of a tiny CNN with dropout on a training set held on the devices
  (checkpointed under ``OUT/fit``, resuming from a checkpoint there), then the
  ``mnist_baseline`` study into ``OUT/study``: streamed host batches, two seeds vmapped by
  ``fit_many``; the fit's history and the epochs it trained;
- ``killed``: the checkpointed ``fit`` into ``OUT/fit``, every process killed by SIGKILL as
  its second epoch ends, before that epoch's checkpoint.
"""

import importlib.util
import json
import os
import signal
import sys
from pathlib import Path

import jax

from jaxcv.data import load_split
from jaxcv.train import fit, make_optimizer, maybe_initialize_distributed
from tiny import TinyCNN


maybe_initialize_distributed()
data_dir, out, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
train = {k: v[:256] for k, v in load_split("shapes/cifar", "train", data_dir).items()}  # 4 steps an epoch
test = {k: v[:200] for k, v in load_split("shapes/cifar", "test", data_dir).items()}
options = dict(optimizer=make_optimizer("sgd", 0.01, momentum=0.9), batch_size=64, eval_batch_size=64,
               progress=False)


result = {"processes": jax.process_count(), "devices": len(jax.devices()), "trained": []}


def on_epoch(epoch, records):
    if mode == "killed" and epoch == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    result["trained"].append(epoch)


result["checkpointed"] = fit(TinyCNN(), train, test, epochs=3, checkpoint_dir=out / "fit", on_epoch=on_epoch,
                             **options).history
if mode == "train":
    spec = importlib.util.spec_from_file_location("mnist_baseline", Path(__file__).parents[1] / "experiments" /
                                                  "mnist_baseline.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    study.run(["--data-dir", data_dir, "--out", str(out / "study"), "--dataset", "shapes/cifar", "--train-size", "128",
               "--test-size", "200", "--epochs", "2", "--seeds", "2", "--batch-size", "64", "--stream",
               "--optimizer", "sgd", "--lr", "0.01", "--no-progress"])
if jax.process_index() == 0:
    print(json.dumps(result))
