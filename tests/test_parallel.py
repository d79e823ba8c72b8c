import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaxcv.errors import UsageError
from jaxcv.train import data_mesh
from jaxcv.train.parallel import check_batch_size


def _assert_close(one_device, four_devices):
    for one, four in zip(one_device, four_devices):
        for key in ("train_loss", "val_loss"):
            assert one[key] == pytest.approx(four[key], rel=1e-4), (key, one, four)
        for key in ("train_accuracy", "val_accuracy"):  # near-chance logits: an argmax tie may flip
            assert one[key] == pytest.approx(four[key], abs=0.02), (key, one, four)


def test_same_losses_on_one_and_four_devices(shapes_cifar, data_dir):
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    script = Path(__file__).with_name("multi_device_run.py")
    proc = subprocess.run([sys.executable, str(script), data_dir], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    assert len(out["histories"]["1"]) == len(out["histories"]["4"]) == 3
    _assert_close(out["histories"]["1"], out["histories"]["4"])
    for one, four in zip(out["many"]["1"], out["many"]["4"]):  # fit_many: K models, vmapped, sharded
        assert len(one) == len(four) == 2
        _assert_close(one, four)
    # BatchNorm normalises over the global batch, not each device's quarter of it
    assert out["bn_gap"] < 1e-4 < 0.1 < out["bn_local_gap"], out


def test_batch_must_split_over_devices():
    mesh = data_mesh()
    check_batch_size(mesh.size * 8, mesh)
    with pytest.raises(UsageError, match="multiple"):
        check_batch_size(0, mesh)
