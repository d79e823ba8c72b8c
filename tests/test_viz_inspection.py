"""The inspection figures: each writes a PNG that shows what it was given."""

import matplotlib.image
import numpy as np

from jaxcv.viz import (plot_attributions, plot_embedding, plot_filter_change, plot_histograms, plot_mosaics,
                       plot_occlusion)

BLUE, ORANGE = np.array([0x1F, 0x77, 0xB4]) / 255, np.array([0xFF, 0x7F, 0x0E]) / 255  # tab10's first two


def _pixels_near(path, colour, tolerance=0.05):
    pixels = matplotlib.image.imread(path)[..., :3].reshape(-1, 3)
    return int((np.abs(pixels - colour).max(axis=1) < tolerance).sum())


def test_mosaics_are_drawn_in_their_colours_and_filter_change_as_bars(tmp_path):
    red = np.zeros((20, 40, 3), np.float32)
    red[..., 0] = 1
    grey = np.full((20, 20, 1), 0.5, np.float32)
    path = plot_mosaics({"rgb": red, "grey": grey}, tmp_path / "m.png", title="filters")
    assert _pixels_near(path, [1, 0, 0]) > 1000 and _pixels_near(path, [0.5, 0.5, 0.5], 0.01) > 1000
    path = plot_filter_change(grey, grey, np.array([0.1, 0.3, 0.2]), tmp_path / "c.png")
    assert _pixels_near(path, BLUE) > 500  # the bars


def test_embedding_scatter_colours_classes_and_frames_thumbnails(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    points = rng.normal(size=(100, 2)) + 6 * labels[:, None]
    images = np.zeros((100, 8, 8, 3), np.uint8)
    images[..., 1] = 255
    path = plot_embedding(points, labels, tmp_path / "e.png", images=images, class_names=["a", "b"], thumbnails=4)
    assert _pixels_near(path, BLUE) > 100 and _pixels_near(path, ORANGE) > 100
    assert _pixels_near(path, [0, 1, 0], 0.01) > 4 * 200  # four green thumbnails


def test_occlusion_and_attribution_heat_maps(tmp_path):
    images = np.full((3, 12, 12, 1), 200, np.uint8)
    prob = np.ones((3, 4, 4), np.float32)
    prob[:, 1, 2] = 0.0
    path = plot_occlusion(images, prob, tmp_path / "o.png", patch=3, stride=3, titles=["a", "b", "c"])
    grey = 0.45 * 200 / 255  # the image under a heat map of alpha 0.55: jet's dark blue at 0, dark red at 1
    low, high = _pixels_near(path, [grey, grey, grey + 0.275]), _pixels_near(path, [grey + 0.275, grey, grey])
    assert 3 * 100 < low < high / 5  # one cell of sixteen per image
    saliency = np.zeros((3, 12, 12), np.float32)
    saliency[:, 6, 6] = 1.0
    path = plot_attributions(images, {"saliency": saliency, "Grad-CAM": saliency}, tmp_path / "a.png",
                             titles=["x", "y", "z"], title="attributions")
    assert _pixels_near(path, [200 / 255] * 3, 0.01) > 3 * 1000  # the three images as they are


def test_histograms_draw_each_series(tmp_path):
    rng = np.random.default_rng(0)
    first = {"conv1/kernel": np.histogram(rng.normal(size=500), 20), "fc/bias": np.histogram(rng.normal(size=9), 5)}
    last = {"conv1/kernel": np.histogram(rng.normal(size=500) * 2, 20)}
    path = plot_histograms({"first": first, "last": last}, tmp_path / "h.png", title="weights", log=True)
    assert _pixels_near(path, BLUE) > 50 and _pixels_near(path, ORANGE) > 50
