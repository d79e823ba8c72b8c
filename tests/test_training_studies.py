"""Issue 3's study scripts as a user runs them: offline, on the embedded data, one short epoch."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script, data_dir, out, *args):
    env = {**os.environ, "JAXCV_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script), "--dataset", "shapes/cifar",
                           "--data-dir", data_dir, "--out", str(out), "--no-progress", *args],
                          capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "history.json").read_text()), (out / "summary.md").read_text()


def _figures(out, *names):
    for name in names:
        assert (out / f"{name}.png").stat().st_size > 5_000, name


def test_overfitting_mnist(shapes_cifar, data_dir, tmp_path):
    history, summary = _run("overfitting_mnist.py", data_dir, tmp_path, "--epochs", "1", "--seeds", "2",
                            "--train-size", "256", "--batch-size", "64", "--wide-fc", "256")
    assert set(history) == {"mnist_cnn[dropout_rate=0.25]", "mnist_cnn[dropout_rate=0]", "no_dropout_fc256"}
    assert set(history["mnist_cnn[dropout_rate=0]"]) == {"0", "1"}
    assert "exact gap" in summary and "no_dropout_fc256" in summary
    _figures(tmp_path, "curves", "gap")


def test_batch_size_mnist(shapes_cifar, data_dir, tmp_path):
    history, summary = _run("batch_size_mnist.py", data_dir, tmp_path, "--epochs", "1", "--seeds", "1",
                            "--train-size", "256", "--batch-sizes", "32,128")
    assert set(history) == {"batch32", "batch128"}
    assert "| batch 32 |" in summary and "| batch 128 |" in summary
    _figures(tmp_path, "curves", "epoch_seconds", "accuracy")


def test_architecture_mnist(shapes_cifar, data_dir, tmp_path):
    history, summary = _run("architecture_mnist.py", data_dir, tmp_path, "--epochs", "1", "--seeds", "1",
                            "--train-size", "128", "--batch-size", "64")
    assert set(history) == {"base", "minus_1_conv", "plus_3_conv", "plus_fc1024"}
    assert "4.9 M" in summary and "seed's params" in summary


def test_lenet_cifar(shapes_cifar, data_dir, tmp_path):
    history, summary = _run("lenet_cifar.py", data_dir, tmp_path, "--epochs", "1", "--seeds", "1",
                            "--train-size", "320", "--batch-size", "64")
    assert set(history) == {"lenet", "lenet_model1", "lenet_model2"}
    assert "| fc2 | 650 | 640 | +10 |" in summary and "| total | 390,410 | 390,400 | +10 |" in summary
    assert "final test accuracy" in summary and "Table 3" in summary


def test_callbacks_study(shapes_cifar, data_dir, tmp_path):
    history, summary = _run("callbacks_study.py", data_dir, tmp_path, "--epochs", "3", "--seeds", "1",
                            "--train-size", "128", "--batch-size", "64", "--patience", "1", "--lr-patience", "1",
                            "--dropout-rates", "0,0.3")
    assert {"none", "early_stopping", "reduce_lr", "both", "dropout[dropout_rate=0]",
            "dropout[dropout_rate=0.3]"} == set(history)
    assert len(history["none"]["0"]) == 3
    assert "Best: rate" in summary
    _figures(tmp_path, "curves", "dropout", "dropout_curves")


def test_hparam_search(shapes_cifar, data_dir, tmp_path):
    _, summary = _run("hparam_search.py", data_dir, tmp_path, "--epochs", "1", "--train-size", "128",
                      "--trials", "3", "--vmap", "2")
    table = summary.split("| sampler |")[1]
    assert table.count("| random |") == 3 and table.count("| tpe |") == 3
    assert "**Best**" in summary
    _figures(tmp_path, "search")
