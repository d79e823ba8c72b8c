"""The three synthesis studies end to end at tiny sizes on a small VGG-shaped network with random
weights (no weight file needed), their command lines' bad-input contract, and the real VGG16 of
``../shared/weights`` (skipped where absent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, study
from jaxcv.errors import UsageError
from jaxcv.models.layers import Conv, max_pool
from jaxcv.synthesis import Network, optimise
from jaxcv.synthesis.dream import dream_objective
from jaxcv.synthesis.filters import channel_means, filter_objective, filter_settings, grey_noise
from jaxcv.synthesis.network import CHECKOUT_WEIGHTS, caffe_input, vgg16


class TinyVGG(nn.Module):
    """VGG16's feature names (with and without ReLU) on five small blocks."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        features = {}
        for block, (width, convs) in enumerate(zip((4, 6, 8, 8, 8), (1, 2, 1, 2, 2)), start=1):
            for i in range(1, convs + 1):
                name = f"conv{block}_{i}"
                x = features[f"{name}_pre_relu"] = Conv(width, name=name)(x)
                x = features[name] = nn.relu(x)
            x = max_pool(x)
        return x, features


@pytest.fixture(scope="module")
def tiny() -> Network:
    model = TinyVGG()
    return Network(model, jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3))), caffe_input)


def test_activation_maximization(tmp_path, tiny):
    study("activation_maximization").run(["--out", str(tmp_path), "--no-progress", "--units", "6", "--size", "32",
                                          "--iterations", "3", "--show", "4", "--batch-size", "4", "--preset", "keras"], network=tiny)
    numbers = json.loads((tmp_path / "activations.json").read_text())
    assert numbers["objective"] == "conv5_1_pre_relu" and len(numbers["achieved"]) == 6 and len(numbers["shown"]) == 4
    value = np.asarray(numbers["objective_value"])
    assert (value[:, -1] > value[:, 0]).all()  # every filter's pre-ReLU mean rose
    summary = (tmp_path / "summary.md").read_text()
    assert "a given TinyVGG" in summary and "filters 0–5 of conv5_1" in summary
    assert (tmp_path / "filters.png").stat().st_size > 0


@pytest.mark.optimized
def test_activation_maximization_of_a_trained_classifiers_logits(shapes_cifar, run_study, data_dir, tmp_path):
    trained = tmp_path / "trained"
    run_study("mnist_baseline", trained, "--dataset", "shapes/cifar", "--train-size", "256", "--test-size", "64",
              "--batch-size", "64", "--epochs", "2")
    out = tmp_path / "classes"
    study("activation_maximization").run(["--from", str(trained), "--model", "mnist_cnn", "--data-dir", data_dir,
                                          "--out", str(out), "--no-progress", "--test-size", "64",
                                          "--iterations", "40", "--step", "8"])
    numbers = json.loads((out / "activations.json").read_text())
    classes = list(range(10))
    assert numbers["units"] == classes and numbers["objective"] == "outputs"
    assert numbers["predicted"] == classes  # every class's image is classified as that class
    assert all(a > s for a, s in zip(numbers["achieved"], numbers["start"]))
    summary = (out / "summary.md").read_text()
    assert "MnistCNN" in summary and "one image per class at 32×32×3" in summary and "clipped to [0, 1]" in summary
    assert (out / "classes.png").stat().st_size > 5_000
    with pytest.raises(UsageError, match="--units name"):
        study("activation_maximization").run(["--from", str(trained), "--units", "3", "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()


def test_neural_style(tmp_path, tiny, monkeypatch):
    argv = ["--out", str(tmp_path), "--no-progress", "--content", "coffee", "--style", "gravel", "--rows", "32",
            "--iterations", "2", "--evaluations", "3", "--layer-sets", "all,last"]
    study("neural_style").run(argv, network=tiny)
    written = (tmp_path / "losses.json").read_text()
    monkeypatch.setattr(study("neural_style"), "optimise", lambda *a, **k: pytest.fail("optimised again"))
    study("neural_style").run(argv, network=tiny)  # a rerun reads each layer set's kept result
    assert (tmp_path / "losses.json").read_text() == written
    losses = json.loads(written)
    assert list(losses) == ["all", "last"]
    for numbers in losses.values():
        assert numbers["iterations"] == [0, 1, 2] and numbers["style"][-1] < numbers["style"][0]
    assert all((tmp_path / f"{name}.png").exists() for name in ("all", "last", "iterations"))
    summary = (tmp_path / "summary.md").read_text()
    # the content preset's weights, set for 96x96, scaled to 32x48: 2 and 0.1 times 9216 / 1536
    assert "32×48 px; content conv4_2 × 12, style × 1, total variation × 0.6" in summary
    assert "from the content image" in summary
    assert all(n["content_error"][0] == 0 for n in losses.values())  # it starts as the content


@pytest.mark.parametrize("preset, argv", [("ascent", ["--octaves", "2"]), ("keras", ["--evaluations", "3"])])
def test_deep_dream(tmp_path, tiny, preset, argv):
    study("deep_dream").run(["--out", str(tmp_path), "--no-progress", "--rows", "40", "--iterations", "2",
                             "--variants", "layer2", "--preset", preset, *argv], network=tiny)
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert list(scores) == ["layer2"]
    terms = scores["layer2"]
    objective = dream_objective(study("deep_dream").VARIANTS["layer2"], (40, 60, 3))  # chelsea, 300x451
    if preset == "keras":
        assert terms["weights"] == objective.weights
    else:  # each weight over its term's value on the photograph
        assert {t: terms["weights"][t] * terms[t][0] for t in objective.weights} == pytest.approx(
            {"dream_conv2_1": 0.05, "dream_conv2_2": 0.02, "continuity": 0.1, "dream_l2": 0.02})
    loss = [sum(terms["weights"][t] * terms[t][k] for t in objective.minimise)
            - sum(terms["weights"][t] * terms[t][k] for t in objective.maximise) for k in (0, 1)]
    assert loss[1] < loss[0]  # the dream scores better than the photograph
    assert f"preset `{preset}`" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "dreams.png").exists() and (tmp_path / "layer2.png").exists()


def test_an_interrupted_deep_dream_resumes_with_the_variants_it_finished(tmp_path, tiny, monkeypatch):
    """Interrupted while dreaming its second variant, a rerun dreams only that one and writes
    what a run never interrupted writes; other options are refused, as for trained runs."""
    dream_study = study("deep_dream")
    argv = ["--no-progress", "--rows", "40", "--iterations", "2", "--octaves", "1", "--variants", "layer2,layer5"]
    dream_study.run(["--out", str(tmp_path / "whole"), *argv], network=tiny)
    dreamed, interrupts, optimise_octaves = [], [KeyboardInterrupt], dream_study.optimise_octaves

    def interrupted(*args, progress, **kwargs):
        dreamed.append(progress)
        if progress == "layer5" and interrupts:
            raise interrupts.pop()
        return optimise_octaves(*args, progress=progress, **kwargs)

    monkeypatch.setattr(dream_study, "optimise_octaves", interrupted)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        dream_study.run(["--out", str(out), *argv[1:]], network=tiny)  # named progress bars: the variants
    dreamed.clear()
    dream_study.run(["--out", str(out), *argv[1:]], network=tiny)
    assert dreamed == ["layer5"]
    assert (out / "scores.json").read_text() == (tmp_path / "whole" / "scores.json").read_text()
    with pytest.raises(UsageError, match=r"other settings \(iterations\)"):
        dream_study.run(["--out", str(out), *argv[1:3], "--iterations", "3", *argv[5:]], network=tiny)


def test_deep_dream_evaluations_are_for_lbfgs_only(tmp_path, tiny):
    out = tmp_path / "run"
    with pytest.raises(UsageError, match="--preset ascent takes gradient steps"):
        study("deep_dream").run(["--out", str(out), "--evaluations", "3"], network=tiny)
    assert not out.exists()


@pytest.mark.parametrize("script, argv, message", [
    ("activation_maximization", ["--weights", "missing/vgg16.h5"], "missing/vgg16.h5: no such weight file"),
    ("neural_style", ["--content", "nope.jpg"], "nope.jpg: no such image file"),
    ("deep_dream", ["--image", "nope.png"], "nope.png: no such image file"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, script, argv, message):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{script}.py"), "--out", str(out), *argv],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert f"error: {message}" in proc.stderr.splitlines()[-1] and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.skipif(not CHECKOUT_WEIGHTS.is_file(), reason=f"{CHECKOUT_WEIGHTS} not found")
def test_pre_relu_ascent_moves_filters_the_relu_leaves_dead():
    # Filters of the real VGG16's conv5_1 that are zero all over a grey image have no gradient
    # after their ReLU: ascent leaves the image as it is.  Before the ReLU they rise.
    network = vgg16(CHECKOUT_WEIGHTS)
    start = grey_noise(jax.random.key(0), 16, size=32)
    dead = np.flatnonzero(channel_means(network, "conv5_1", start)[np.arange(16), np.arange(16)] == 0)[:3]
    assert len(dead) == 3
    relu, pre = (optimise(network, filter_objective(layer), start[dead], filter_settings(iterations=5), units=dead)
                 for layer in ("conv5_1", "conv5_1_pre_relu"))
    np.testing.assert_array_equal(relu.final, start[dead])
    value = pre.terms["activation"]
    assert (value[:, -1] > value[:, 0]).all()
