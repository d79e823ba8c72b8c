import numpy as np
import pytest

from jaxcv.data.images import read_image, write_png
from jaxcv.errors import UsageError


def test_png_round_trip_and_resize(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    path = write_png(tmp_path / "a.png", image)
    np.testing.assert_array_equal(read_image(path), image)
    assert read_image(path, 20).shape == (20, 30, 3)  # shorter side, aspect kept
    assert read_image(path, 20, keep_aspect=False).shape == (20, 20, 3)
    assert read_image(path, (10, 50)).shape == (10, 50, 3)
    assert read_image(path, grayscale=True).shape == (40, 60, 1)
    write_png(tmp_path / "f.png", np.full((4, 4, 1), 0.5))
    assert read_image(tmp_path / "f.png", grayscale=True).max() == 128
    assert not list(tmp_path.glob(".*tmp"))


def test_missing_and_unreadable_images_name_the_file(tmp_path):
    with pytest.raises(UsageError, match="nope.png: no such image"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(UsageError, match="bad.jpg: not a readable image"):
        read_image(tmp_path / "bad.jpg")
