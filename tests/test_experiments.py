"""The study scripts as a user runs them: offline, on the embedded data, briefly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script, *args, env=None):
    env = {**os.environ, "JAXCV_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "experiments" / script), *args], capture_output=True,
                          text=True, env=env, timeout=900, cwd=ROOT)


def test_batchnorm_cifar_writes_its_outputs(shapes_cifar, data_dir, tmp_path):
    out = tmp_path / "bn"
    proc = _run("batchnorm_cifar.py", "--dataset", "shapes/cifar", "--data-dir", data_dir, "--epochs", "1",
                "--seeds", "2", "--train-size", "256", "--batch-size", "64", "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 1 and config["dataset"] == "shapes/cifar"
    history = json.loads((out / "history.json").read_text())
    assert set(history) == {"without_bn", "with_bn"} and set(history["with_bn"]) == {"0", "1"}
    for record in history["with_bn"]["1"]:
        assert {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_seconds"} <= set(record)
    summary = (out / "summary.md").read_text()
    assert "with_bn" in summary and "±" in summary and "s / epoch" in summary
    assert (out / "curves.png").stat().st_size > 10_000

    # rerunning with more epochs resumes each run from its checkpoint
    again = _run("batchnorm_cifar.py", "--dataset", "shapes/cifar", "--data-dir", data_dir, "--epochs", "2",
                 "--seeds", "2", "--train-size", "256", "--batch-size", "64", "--out", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads((out / "history.json").read_text())["with_bn"]["0"]
    assert [r["epoch"] for r in resumed] == [1, 2]
    assert resumed[:1] == history["with_bn"]["0"]

    clash = _run("batchnorm_cifar.py", "--dataset", "shapes/cifar", "--data-dir", data_dir, "--epochs", "2",
                 "--seeds", "2", "--train-size", "256", "--batch-size", "64", "--out", str(out), "--lr", "0.1")
    assert clash.returncode == 2 and "other settings (lr)" in clash.stderr


def test_mnist_baseline_prints_the_parameter_table(tmp_path, data_dir, shapes_cifar):
    proc = _run("mnist_baseline.py", "--dataset", "shapes/cifar", "--data-dir", data_dir, "--epochs", "1",
                "--train-size", "256", "--out", str(tmp_path / "m"), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| conv3 |" in proc.stdout and "| **total** |" in proc.stdout
    assert "test accuracy" in (tmp_path / "m" / "summary.md").read_text()


def test_offline_dataset_is_one_clear_line(tmp_path):
    proc = _run("batchnorm_cifar.py", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--data-dir" in proc.stderr and "shapes/cifar" in proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--epochs", "0"], "positive integer"),
    (["--batch-size", "many"], "positive integer"),
    (["--lr", "-1"], "positive number"),
    (["--optimizer", "adamm"], "invalid choice"),
])
def test_malformed_arguments(args, message, tmp_path):
    proc = _run("batchnorm_cifar.py", *args, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_help_lists_the_datasets():
    proc = _run("batchnorm_cifar.py", "--help")
    assert proc.returncode == 0 and "shapes/cifar" in proc.stdout and "cifar10" in proc.stdout
