import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxcv.data import DataUnavailableError, load_split, num_classes, pipeline, stream
from jaxcv.data.shapes import CIFAR_SHAPES, SHAPES, coverage, render_cifar, render_classic


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_pipeline_on_mock_data(name, shape, monkeypatch):
    monkeypatch.setattr(pipeline, "_online", lambda: True)  # mock_data stands in for the download
    with tfds.testing.mock_data(num_examples=20):
        data = load_split(name, "train")
        batches = list(stream(name, "train", batch_size=8, shuffle_seed=0))
    assert data["image"].shape == (20, *shape) and data["image"].dtype == np.uint8
    assert data["label"].dtype == np.int32 and data["label"].max() < 10
    assert len(batches) == 2 and batches[0]["image"].shape == (8, *shape)
    assert num_classes(name) == 10


def test_shapes_cifar_split(shapes_cifar):
    train, test = shapes_cifar
    assert train["image"].shape == (5000, 32, 32, 3) and test["image"].shape == (1000, 32, 32, 3)
    counts = np.bincount(train["label"], minlength=10)
    assert counts.min() > 400  # roughly balanced over the ten classes
    assert train["image"].std() > 40  # colour images, not blank


def test_shapes_are_deterministic():
    a = render_cifar(np.random.default_rng(3), 4)
    b = render_cifar(np.random.default_rng(3), 4)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    easy = render_classic(np.random.default_rng(0), 0)
    assert easy.shape == (72, 72) and easy.min() == 0 and easy.max() == 255


def test_coverage_geometry():
    centre = np.array([16.0, 16.0])
    disc = coverage(SHAPES["circle"], 32, centre, 8.0, 0.0)
    assert abs(disc.sum() - np.pi * 64) < 3  # area of a radius-8 disc, anti-aliased
    assert disc[16, 16] == 1 and disc[0, 0] == 0
    ring = coverage(SHAPES["ring"], 32, centre, 8.0, 0.0)
    assert ring[16, 16] == 0 and ring.sum() < disc.sum()
    assert len(CIFAR_SHAPES) == 10 and set(CIFAR_SHAPES) <= set(SHAPES)


def test_offline_error_names_data_dir_and_embedded_sets(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXCV_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as e:
        load_split("mnist", "train", str(tmp_path))
    assert "--data-dir" in str(e.value) and "shapes/cifar" in str(e.value)


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(DataUnavailableError, match="unknown dataset"):
        pipeline.prepared_builder("no_such_dataset_xyz")
