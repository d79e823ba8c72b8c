"""Report 004's datasets and task losses: triangles with their vertices, noisy/clean pairs."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcv.data import EMBEDDED, denoise_pairs, sort_vertices, vertex_targets
from jaxcv.data.shapes import polygon_coverage, render_triangle
from jaxcv.errors import UsageError
from jaxcv.train import psnr, reconstruction, vertex_regression


def test_embedded_list_has_the_new_tasks():
    assert {"shapes/easy", "shapes/hard", "shapes/cifar", "shapes/triangles", "shapes/denoise"} == set(EMBEDDED)


def test_triangle_vertices_match_the_drawing():
    image, vertices = render_triangle(np.random.default_rng(0), 72)
    assert image.shape == (72, 72) and image.dtype == np.uint8
    assert vertices.shape == (6,) and vertices.dtype == np.float32 and 0 <= vertices.min() <= vertices.max() <= 1
    ink = 1 - image / 255.0
    rows, cols = np.mgrid[0:72, 0:72] + 0.5
    centre = np.array([(ink * cols).sum(), (ink * rows).sum()]) / ink.sum()
    np.testing.assert_allclose(centre, vertices.reshape(3, 2).mean(0) * 72, atol=0.5)  # centroid, in pixels
    area = polygon_coverage(np.array([[10.0, 10], [60, 10], [10, 60]]), 72).sum()
    assert abs(area - 50 * 50 / 2) < 10


def test_sort_vertices_is_canonical():
    v = np.array([[0.9, 0.1, 0.2, 0.5, 0.2, 0.3]])
    np.testing.assert_array_equal(sort_vertices(v), [[0.2, 0.3, 0.2, 0.5, 0.9, 0.1]])
    for perm in itertools.permutations(range(3)):  # any drawing order gives the same target
        np.testing.assert_array_equal(sort_vertices(v.reshape(1, 3, 2)[:, perm].reshape(1, 6)), sort_vertices(v))


def test_triangles_split(shapes_triangles):
    train, test = shapes_triangles
    assert set(train) == {"image", "label", "vertices"} and train["image"].shape[1:] == (72, 72, 1)
    assert train["vertices"].dtype == np.float32 and len(test["vertices"]) == len(test["image"])
    sorted_, raw = vertex_targets(train), vertex_targets(train, sort=False)
    assert set(sorted_) == {"image", "target"} and sorted_["target"].shape == (len(train["image"]), 6)
    np.testing.assert_array_equal(raw["target"], train["vertices"])
    assert (np.diff(sorted_["target"][:, ::2], axis=1) >= 0).all()
    assert not (np.diff(raw["target"][:, ::2], axis=1) >= 0).all()
    with pytest.raises(UsageError, match="needs a 'vertices' feature.*it has image, label.*use shapes/triangles"):
        vertex_targets({"image": train["image"], "label": train["label"]})


def test_denoise_split(shapes_denoise):
    train, _ = shapes_denoise
    pairs = denoise_pairs(train)
    noisy, clean = pairs["image"][:50] / 255.0, pairs["target"][:50] / 255.0
    assert pairs["target"].dtype == np.uint8 and pairs["target"].shape == pairs["image"].shape
    assert np.abs(noisy - clean).mean() > 0.1  # really noisy
    # the same shape in both: the clean image's dark pixels are dark in the noisy one too
    assert noisy[clean < 0.1].mean() < noisy[clean > 0.9].mean() - 0.3
    assert np.bincount(train["label"], minlength=3).min() > 0.2 * len(train["label"])


def test_vertex_regression_matched_mse_ignores_order():
    target = jnp.array([[0.1, 0.2, 0.5, 0.9, 0.8, 0.3]])
    swapped = target.reshape(1, 3, 2)[:, ::-1].reshape(1, 6)
    out = vertex_regression(swapped, {"target": target})
    assert float(out["loss"][0]) > 0.05 and float(out["matched_mse"][0]) == 0.0
    np.testing.assert_allclose(vertex_regression(target + 0.1, {"target": target})["matched_mse"], [0.01], rtol=1e-5)


def test_psnr_and_uint8_reconstruction_targets():
    target = jnp.zeros((1, 4, 4, 1))
    np.testing.assert_allclose(psnr(jnp.full((1, 4, 4, 1), 0.1), target), [20.0], rtol=1e-5)
    as_uint8 = reconstruction(jnp.full((1, 4), -10.0), {"target": jnp.zeros((1, 4), jnp.uint8)})
    as_float = reconstruction(jnp.full((1, 4), -10.0), {"target": jnp.zeros((1, 4))})
    np.testing.assert_allclose(as_uint8["loss"], as_float["loss"])
    assert float(as_uint8["psnr"][0]) > 80
