"""Reading run folders back (``jaxcv.runs``) and the three inspecting studies, run in-process on
the embedded shapes at tiny sizes (each script's command line is checked in test_experiments.py)."""

import json

import jax
import numpy as np
import pytest

from conftest import study
from jaxcv import experiment, inspection, runs
from jaxcv.errors import UsageError
from jaxcv.models import get_model
from jaxcv.train import make_optimizer

TINY = ("--dataset", "shapes/cifar", "--train-size", "128", "--test-size", "64", "--batch-size", "64")


def _files(folder):
    """Every file under ``folder`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def _inspect(name, out, data_dir, *argv):
    """``name`` run in-process as ``run_study`` does, on a ``--from`` run (no history of its own): its summary."""
    study(name).run(["--data-dir", data_dir, "--out", str(out), "--no-progress", *argv])
    return (out / "summary.md").read_text()


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_load_run_returns_each_member_of_a_group_at_each_saved_epoch(shapes_cifar, data_dir, tmp_path):
    p = experiment.parser("group", "", dataset="shapes/cifar", epochs=2, batch_size=32, seeds=2)
    study = experiment.Study("group", p, ["--data-dir", data_dir, "--train-size", "64", "--out", str(tmp_path),
                                          "--no-progress"])
    train, _, _ = study.load_data()
    model = get_model("shapes_linear", num_classes=10)
    results = study.sweep("linear", model, train, None, {"learning_rate": [0.01, 0.02]},
                          optimizer=make_optimizer("sgd", 0.01))
    before = _files(tmp_path)
    for variant, members in results.items():
        for seed, result in enumerate(members):
            restored = runs.load_run(tmp_path, variant, seed)
            assert (restored.epoch, restored.epochs, restored.variant) == (2, [1, 2], variant)
            assert _same(restored.variables["params"], result.state.params)
    first = runs.load_run(tmp_path, "linear[learning_rate=0.02]", 1, epoch=1)
    assert not _same(first.variables, runs.load_run(tmp_path, "linear[learning_rate=0.02]", 1).variables)
    assert runs.load_run(tmp_path).variant == "linear[learning_rate=0.01]"  # the first variant by default
    for call, message in (
            (lambda: runs.load_run(tmp_path, "linear", 0), r"no variant 'linear'; its variants are linear\[learning"),
            (lambda: runs.load_run(tmp_path, "linear[learning_rate=0.01]", 5), "no seed 5 .* its seeds are 0, 1"),
            (lambda: runs.load_run(tmp_path, None, 0, epoch=7), "epoch 7 .* not saved .* the saved epochs are 1, 2"),
            (lambda: runs.load_run(tmp_path / "nothing"), "not a study's run folder"),
            (lambda: runs.check_model(get_model("cifar_cnn"), first.variables, train["image"][:1], tmp_path),
             "holds another model than CifarCNN for 32x32x3 images"),
    ):
        with pytest.raises(UsageError, match=message):
            call()
    assert _files(tmp_path) == before and not (tmp_path / "nothing").exists()
    runs.check_model(model, first.variables, train["image"][:1], tmp_path)


def test_load_run_finds_sequentially_trained_seeds(shapes_cifar, data_dir, tmp_path):
    p = experiment.parser("alone", "", dataset="shapes/cifar", epochs=1, batch_size=32, seeds=2)
    study = experiment.Study("alone", p, ["--data-dir", data_dir, "--train-size", "64", "--out", str(tmp_path),
                                          "--no-progress", "--sequential-seeds"])
    train, _, _ = study.load_data()
    results = study.run("linear", get_model("shapes_linear", num_classes=10), train, None,
                        optimizer=make_optimizer("sgd", 0.01))
    assert (tmp_path / "checkpoints" / "linear" / "seed1").is_dir()
    assert _same(runs.load_run(tmp_path, "linear", 1).variables["params"], results[1].state.params)


def test_filters_activations_then_tsne_and_occlusion_from_its_run(shapes_cifar, run_study, data_dir, tmp_path, capsys):
    trained = tmp_path / "filters"
    _, summary = run_study("filters_activations", trained, *TINY, "--epochs", "2")
    assert "training cifar_cnn on shapes/cifar for 2 epoch(s) first" in capsys.readouterr().out
    results = json.loads((trained / "results.json").read_text())
    assert (results["first_epoch"], results["last_epoch"], results["layer"]) == (1, 2, "conv1")
    assert len(results["filter_distance"]) == 32 and min(results["filter_distance"]) > 0
    assert "| conv1/kernel |" in summary and "epochs 1 and 2" in summary
    for name in ("filters_conv1", "filters_conv1_channels", "activations_conv1", "activations_first_last_conv",
                 "weights", "weight_change"):
        assert (trained / f"{name}.png").stat().st_size > 5_000, name
    before = _files(trained)

    deeper = tmp_path / "conv2"  # 32 input channels: a mosaic of the 32 filters per input channel
    _inspect("filters_activations", deeper, data_dir, "--from", str(trained), *TINY, "--layer", "conv2")
    results = json.loads((deeper / "results.json").read_text())
    assert results["layer"] == "conv2" and len(results["filter_distance"]) == 32
    assert (deeper / "filters_conv2.png").stat().st_size > 5_000
    assert not (deeper / "filters_conv2_channels.png").exists()  # colour channels: the first layer's alone

    out = tmp_path / "tsne"
    summary = _inspect("tsne_mnist", out, data_dir, "--from", str(trained), "--test-size", "64", "--points", "60",
                           "--perplexity", "10", "--epoch", "1")
    tsne = json.loads((out / "results.json").read_text())
    assert (tsne["model"], tsne["epoch"], tsne["points"]) == ("CifarCNN", 1, 60)
    assert set(tsne["embeddings"]) == {"features (penultimate)", "raw pixels"}
    assert 0 <= tsne["embeddings"]["raw pixels"]["knn5_accuracy"] <= 1 and "5-NN accuracy" in summary
    assert not (out / "checkpoints").exists() and (out / "tsne_features.png").stat().st_size > 5_000

    out = tmp_path / "occlusion"
    summary = _inspect("occlusion", out, data_dir, "--from", str(trained), "--test-size", "3", "--examples", "5",
                           "--patch", "8", "--stride", "8")
    occlusion = json.loads((out / "results.json").read_text())  # --examples 5 of 3 test images: the 3
    assert len(occlusion["images"]) == 3 and np.shape(occlusion["images"][0]["true_prob"]) == (4, 4)
    assert occlusion["grad_cam_layer"] == "conv4" and "on_shape" not in occlusion  # shapes/cifar has no masks
    assert (out / "attributions.png").stat().st_size > 5_000
    assert _files(trained) == before

    for script, argv, message in (
            ("tsne_mnist", ("--model", "mnist_cnn"), "holds another model than MnistCNN"),
            ("tsne_mnist", ("--epoch", "9"), "epoch 9 of 'cifar_cnn' was not saved"),
            ("filters_activations", ("--layer", "fc1"), "unknown conv layer 'fc1'; this model's conv layers are conv1"),
            ("occlusion", ("--patch", "40"), "patch must be 1 to 32 pixels"),
            ("occlusion", ("--variant", "other"), "no variant 'other'; its variants are cifar_cnn")):
        with pytest.raises(UsageError, match=message):
            _inspect(script, tmp_path / "bad", data_dir, "--from", str(trained), "--test-size", "64", *argv)
    assert _files(trained) == before


@pytest.mark.parametrize("script,argv,message", [
    ("filters_activations", ("--layer", "pool1"), "unknown conv layer 'pool1'"),
    ("filters_activations", ("--image", "64"), "--image 64 is not one of the 64 test images"),
    ("tsne_mnist", ("--layer", "conv9"), "unknown layer 'conv9'"),
    ("tsne_mnist", ("--points", "20"), r"perplexity must be in \[1, 20\) for 20 points, got 30"),
    ("tsne_mnist", ("--k", "64"), r"k must be in \[1, 63\] for 64 points, got 64"),
    ("occlusion", ("--patch", "40"), "patch must be 1 to 32 pixels")])
def test_an_inspecting_study_refuses_its_options_before_it_trains(script, argv, message, shapes_cifar, run_study,
                                                                   tmp_path):
    with pytest.raises(UsageError, match=message):
        run_study(script, tmp_path, *TINY, *argv)
    assert not (tmp_path / "checkpoints").exists()  # no epoch spent on a typo


@pytest.mark.optimized  # its deep CNN's jitted steps go wrong at jaxlib 0.10's -O0 (conftest.py): NaN here
def test_occlusion_measures_how_often_the_worst_patch_touches_the_shape(shapes_easy, run_study, tmp_path, capsys):
    _, summary = run_study("occlusion", tmp_path, "--dataset", "shapes/easy", "--epochs", "1", "--train-size", "64",
                           "--test-size", "24", "--examples", "4", "--patch", "16", "--stride", "8")
    rate = json.loads((tmp_path / "results.json").read_text())["on_shape"]
    assert rate["images"] == 24 and "Of the first 24 test images" in summary  # --measure 256: all there are
    if rate["correct"]:
        assert 0 <= rate["worst_patch_on_shape"] <= 1 and 0 < rate["any_patch_on_shape"] < 1
    assert "worst patch on the shape" in capsys.readouterr().out


def test_patch_coverage_counts_the_mask_under_each_patch():
    mask = np.random.default_rng(0).uniform(size=(2, 9, 11)) < 0.2
    cover = np.asarray(inspection.patch_coverage(mask, patch=3, stride=2))
    rows, cols = inspection.positions(9, 3, 2), inspection.positions(11, 3, 2)
    assert cover.shape == (2, len(rows), len(cols))
    for n in range(2):
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                assert cover[n, i, j] == pytest.approx(mask[n, r:r + 3, c:c + 3].mean())
    with pytest.raises(UsageError, match="do not fit 9x11"):
        inspection.patch_coverage(mask, patch=10, stride=1)


def test_probabilities_are_the_softmax_of_the_model_however_batched():
    model = get_model("shapes_linear", num_classes=3)
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    variables = model.init(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32))
    expected = jax.nn.softmax(model.apply(variables, images / 255.0)[0])
    np.testing.assert_allclose(inspection.probabilities(model, variables, images, batch_size=2), expected, rtol=1e-5)
