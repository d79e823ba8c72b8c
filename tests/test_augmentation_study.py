"""The augmentation study as a user runs it: offline, on the embedded data, one short epoch."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_augmentation_cifar_writes_its_outputs(shapes_cifar, data_dir, tmp_path):
    out = tmp_path / "aug"
    env = {**os.environ, "JAXCV_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "augmentation_cifar.py"), "--dataset",
                           "shapes/cifar", "--data-dir", data_dir, "--epochs", "1", "--train-size", "256",
                           "--seeds", "1", "--grid-transforms", "zoom,horizontal_flip", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(json.loads((out / "history.json").read_text())) == {"none", "keras_cifar10_cnn"}
    grid = json.loads((out / "grid" / "history.json").read_text())
    assert set(grid) == {"none", "zoom", "horizontal_flip", "zoom+horizontal_flip"}
    summary = (out / "summary.md").read_text()
    assert "keras_cifar10_cnn" in summary and "| rank | zoom | horizontal_flip |" in summary
    assert "main effect" in summary and "epoch time" in summary
    for figure in ("curves", "grid_curves", "augmented_examples"):
        assert (out / f"{figure}.png").stat().st_size > 10_000
