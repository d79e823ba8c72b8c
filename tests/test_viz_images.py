"""The image grid: every image lands in its cell, in its colours."""

import matplotlib.image
import numpy as np
import pytest

from jaxcv.viz import image_grid, polygon_grid


def test_image_grid_draws_each_image_in_its_colours(tmp_path):
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((8, 8, 3), np.float32)
    blue[..., 2] = 1.0
    grey = np.full((8, 8, 1), 0.5, np.float32)
    path = image_grid([red, blue, grey], tmp_path / "grid.png", titles=["r", "b", "g"], rows=1, title="three")
    pixels = matplotlib.image.imread(path)[..., :3].reshape(-1, 3)
    for colour in ([1, 0, 0], [0, 0, 1], [0.5, 0.5, 0.5]):
        assert (np.abs(pixels - colour).max(axis=1) < 0.02).sum() > 100  # a cell's worth of that colour


def test_image_grid_checks_its_labels(tmp_path):
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        image_grid(np.zeros((3, 4, 4)), tmp_path / "g.png", titles=["a", "b"])
    with pytest.raises(ValueError, match="1 row labels for 2 rows"):
        image_grid(np.zeros((4, 4, 4)), tmp_path / "g.png", rows=2, row_labels=["a"])


def test_polygon_grid_draws_outlines_over_images(tmp_path):
    images = np.full((2, 16, 16, 1), 255, np.uint8)
    triangles = np.array([[0.1, 0.1, 0.9, 0.1, 0.5, 0.9]] * 2)
    path = polygon_grid(images, {"true": triangles}, tmp_path / "p.png", rows=1, title="t")
    pixels = matplotlib.image.imread(path)[..., :3].reshape(-1, 3)
    blue = np.array([0x1F, 0x77, 0xB4]) / 255  # the first colour of the cycle
    assert (np.abs(pixels - blue).max(axis=1) < 0.05).sum() > 50
    with pytest.raises(ValueError, match="do not match 2 images"):
        polygon_grid(images, {"true": triangles[:1]}, tmp_path / "q.png")
