"""Image files in and out: any JPEG/PNG a user gives, read as uint8 RGB (optionally resized);
arrays written as PNG.  Shared by image-folder datasets and the synthesis studies."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxcv.errors import UsageError
from jaxcv.files import replacing

Size = int | tuple[int, int]
"""An ``(height, width)``, or one int: the shorter side when the aspect is kept, else a square."""


def _target(image: Image.Image, size: Size, keep_aspect: bool) -> tuple[int, int]:
    """The ``(width, height)`` PIL resizes to."""
    if not isinstance(size, int):
        height, width = size
        return width, height
    if not keep_aspect:
        return size, size
    scale = size / min(image.size)
    return max(1, round(image.width * scale)), max(1, round(image.height * scale))


def read_image(path: str | os.PathLike, size: Size | None = None, *, keep_aspect: bool = True,
               grayscale: bool = False) -> np.ndarray:
    """The image at ``path`` as uint8 ``(H, W, 3)`` (``(H, W, 1)`` with ``grayscale``), resized
    with a bicubic filter to ``size`` if given.  A missing or unreadable file is a
    ``UsageError`` naming it."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image = image.convert("L" if grayscale else "RGB")
            if size is not None:
                image = image.resize(_target(image, size, keep_aspect), Image.Resampling.BICUBIC)
            array = np.asarray(image, np.uint8)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such image file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"{path}: not a readable image ({e})") from None
    return array[..., None] if grayscale else array


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write ``image`` (uint8, or float in [0, 1]; ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``) as
    a PNG, atomically (a temporary file renamed into place)."""
    path = Path(path)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    with replacing(path) as f:
        Image.fromarray(image).save(f, format="PNG")
    return path
