"""Images to optimise from: any JPEG/PNG a user names, or by name one of the photographs and
textures that scikit-image ships inside its wheel (no download), the offline defaults."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np

from jaxcv.data.images import read_image
from jaxcv.errors import UsageError

# name: file inside the ``skimage.data`` package
SAMPLES = {
    "astronaut": "astronaut.png", "chelsea": "chelsea.png", "coffee": "coffee.png", "rocket": "rocket.jpg",
    "ihc": "ihc.png", "hubble_deep_field": "hubble_deep_field.jpg", "gravel": "gravel.png",
    "brick": "brick.png", "grass": "grass.png",
}
CONTENT_SAMPLES = ("astronaut", "chelsea", "coffee")
PHOTOGRAPHS = ("astronaut", "chelsea", "coffee", "rocket")
STYLE_SAMPLES = ("ihc", "hubble_deep_field", "gravel")


def image_path(source: str | os.PathLike) -> Path:
    """The file of a sample name, or ``source`` itself if it is a file; else a ``UsageError``."""
    if str(source) in SAMPLES:
        return Path(str(resources.files("skimage.data") / SAMPLES[str(source)]))
    path = Path(source)
    if not path.is_file():
        raise UsageError(f"{source}: no such image file, nor a sample name ({', '.join(SAMPLES)})")
    return path


def load_image(source: str | os.PathLike, rows: int | None = None,
               shape: tuple[int, int] | None = None) -> np.ndarray:
    """An image as float32 ``(H, W, 3)`` in ``[0, 1]``: ``rows`` high with the aspect kept (the
    width truncated, as Keras' style example does), or exactly ``shape = (H, W)``, or as it is."""
    path = image_path(source)
    if rows is not None:
        if rows < 1:
            raise UsageError(f"image rows is {rows}; it must be >= 1")
        height, width = read_image(path).shape[:2]
        shape = (rows, max(1, int(width * rows / height)))
    if shape is not None and min(shape) < 1:
        raise UsageError(f"image shape {shape} must be positive")
    return read_image(path, shape).astype(np.float32) / 255.0
