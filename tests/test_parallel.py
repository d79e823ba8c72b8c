import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxcv.errors import UsageError
from jaxcv.local_cluster import run_processes
from jaxcv.train import data_mesh
from jaxcv.train.parallel import check_batch_size, check_processes_agree, fingerprint

ROOT = Path(__file__).resolve().parents[1]
JOB_TIMEOUT = 600  # seconds for a whole job, its processes killed past it


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


def _job(processes: int, devices: int, data_dir: str, out: Path, mode: str) -> dict:
    """``multi_process_run.py`` as a job of ``processes`` x ``devices``; process 0's JSON."""
    done = run_processes([sys.executable, str(ROOT / "tests" / "multi_process_run.py"), data_dir, str(out), mode],
                         processes, devices, timeout=JOB_TIMEOUT)
    assert [p.returncode for p in done] == [0] * processes, [p.stderr[-3000:] for p in done]
    return json.loads(done[0].stdout.strip().splitlines()[-1])


def test_two_processes_train_as_one_and_resume(shapes_cifar, data_dir, tmp_path):
    """2 processes x 2 devices = 1 process x 4 devices, for a fit on device-held data and a
    study streaming host batches to two vmapped seeds (each process its own block of every
    batch), where the 2-process job was killed after its first checkpoint and resumed."""
    one = _job(1, 4, data_dir, tmp_path / "1x4", "train")
    done = run_processes([sys.executable, str(ROOT / "tests" / "multi_process_run.py"), data_dir,
                          str(tmp_path / "2x2"), "killed"], 2, 2, timeout=JOB_TIMEOUT)
    assert all(p.returncode < 0 for p in done), [p.stderr[-3000:] for p in done]  # killed by a signal
    assert sorted(p.name for p in (tmp_path / "2x2" / "fit").iterdir() if p.name.isdigit()) == ["1"]
    two = _job(2, 2, data_dir, tmp_path / "2x2", "train")
    assert (one["processes"], one["devices"], two["processes"], two["devices"]) == (1, 4, 2, 4)
    assert (one["trained"], two["trained"]) == ([1, 2, 3], [2, 3])  # epoch 1 came from the checkpoint
    _assert_close(one["checkpointed"], two["checkpointed"])
    histories = [json.loads((tmp_path / job / "study" / "history.json").read_text()) for job in ("1x4", "2x2")]
    for seed in ("0", "1"):
        _assert_close(histories[0]["mnist_cnn"][seed], histories[1]["mnist_cnn"][seed])
    assert histories[1]["mnist_cnn"]["0"][-1]["train_loss"] != histories[1]["mnist_cnn"]["1"][-1]["train_loss"]
    study = tmp_path / "2x2" / "study"
    assert {"config.json", "curves.png", "history.json", "summary.md"} <= {p.name for p in study.iterdir()}
    for seed in ("seed0", "seed1"):  # written by process 0 alone: one event file, not one per process
        assert len(list((study / "tensorboard" / "mnist_cnn" / seed).iterdir())) == 1


def test_processes_that_disagree_or_miss_each_other_stop_with_one_line(shapes_cifar, data_dir, tmp_path):
    """Other options on one process: every process names the disagreement and exits with 2;
    a process whose peers never come: one line and exit code 2 within its join timeout."""
    argv = [sys.executable, str(ROOT / "experiments" / "mnist_baseline.py"), "--data-dir", data_dir, "--out",
            str(tmp_path / "study"), "--dataset", "shapes/cifar", "--train-size", "64", "--epochs", "1"]
    done = run_processes(argv, 2, 1, timeout=JOB_TIMEOUT, per_process=[[], ["--lr", "0.5"]])
    for p in done:
        assert p.returncode == 2, p.stderr[-3000:]
        assert "error: the processes disagree on the study's options: process(es) 1 differ" in p.stderr
    alone = run_processes([sys.executable, "-c", "from jaxcv.train import maybe_initialize_distributed as m; m()"],
                          1, 1, timeout=120, env={"JAX_COORDINATOR_ADDRESS": "127.0.0.1:9", "JAX_NUM_PROCESSES": "2",
                                                  "JAX_PROCESS_ID": "1", "JAXCV_JOIN_TIMEOUT": "3"})[0]
    assert alone.returncode == 2 and "did not meet all 2 processes at 127.0.0.1:9 within 3 s" in alone.stderr


def test_processes_agree_on_one_and_fingerprints_tell_data_apart():
    check_processes_agree("nothing", {"image": np.zeros(3)})  # one process: nothing to compare
    a = {"image": np.zeros((2, 3), np.uint8), "label": np.arange(2)}
    assert fingerprint(a, [0, 1]) == fingerprint(dict(a), [0, 1])
    assert fingerprint(a, [0, 1]) != fingerprint({**a, "label": np.arange(1, 3)}, [0, 1])
    assert fingerprint(a) != fingerprint({"image": a["image"].reshape(3, 2), "label": a["label"]})
    assert fingerprint(a, [0, 1]) != fingerprint(a, [0, 2])
