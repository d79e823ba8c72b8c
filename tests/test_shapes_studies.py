"""Seed 004's study scripts as a user runs them: offline, on the embedded shapes, one short epoch."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script, data_dir, out, *args):
    env = {**os.environ, "JAXCV_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script), "--data-dir", data_dir,
                           "--out", str(out), "--no-progress", "--epochs", "1", "--seeds", "1", *args],
                          capture_output=True, text=True, env=env, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.json", "history.json", "summary.md"):
        assert (out / name).exists(), name
    return json.loads((out / "history.json").read_text()), (out / "summary.md").read_text(), proc.stdout


def _figures(out, *names):
    for name in names:
        assert (out / f"{name}.png").stat().st_size > 5_000, name


def test_shapes_classification(shapes_easy, shapes_hard, data_dir, tmp_path):
    history, summary, stdout = _run("shapes_classification.py", data_dir, tmp_path, "--train-size", "64")
    models = ("shapes_linear", "shapes_shallow_cnn", "shapes_deep_cnn")
    assert set(history) == {f"{task}/{m}" for task in ("easy", "hard") for m in models}
    assert "| shapes_linear | 15,555 |" in summary and "| shapes_deep_cnn | 7,187 |" in summary
    assert "easy test acc" in stdout
    _figures(tmp_path, "curves_easy", "curves_hard", "linear_weights")


def test_shapes_regression(shapes_triangles, data_dir, tmp_path):
    history, summary, _ = _run("shapes_regression.py", data_dir, tmp_path, "--train-size", "64", "--examples", "4")
    assert set(history) == {"sorted", "unsorted"} and "val_matched_mse" in history["sorted"]["0"][0]
    assert "| sorted |" in summary and "| unsorted |" in summary and "matched" in summary
    _figures(tmp_path, "curves", "triangles")


def test_shapes_denoising(shapes_denoise, data_dir, tmp_path):
    history, summary, _ = _run("shapes_denoising.py", data_dir, tmp_path, "--train-size", "64", "--batch-size", "32")
    assert "val_psnr" in history["hourglass"]["0"][0]
    assert "| hourglass | 46,913 |" in summary and "noisy input PSNR" in summary
    _figures(tmp_path, "curves", "denoised")


def test_help_is_clear():
    for script, words in (("shapes_classification.py", "--easy-dataset"), ("shapes_regression.py", "sorted"),
                          ("shapes_denoising.py", "PSNR")):
        proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script), "--help"],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert proc.returncode == 0 and words in proc.stdout and "--epochs" in proc.stdout
