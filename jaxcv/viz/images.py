"""A grid of images (examples, augmentations, reconstructions) as one PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def image_grid(images: np.ndarray | Sequence[np.ndarray], path: str | Path, *, titles: Sequence[str] | None = None,
               rows: int | None = None, row_labels: Sequence[str] | None = None, title: str = "",
               cell_inches: float = 1.2) -> Path:
    """Draw ``images`` (each ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; uint8, or floats in
    [0, 1]) row by row in ``rows`` rows (default: about square), with optional per-image
    ``titles``, per-row ``row_labels`` and a figure ``title``; write a PNG to ``path``."""
    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("image_grid needs at least one image")
    rows = rows or max(1, round(math.sqrt(len(images))))
    cols = math.ceil(len(images) / rows)
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for {rows} rows")
    fig, axes = plt.subplots(rows, cols, figsize=(cell_inches * cols + (1.5 if row_labels else 0),
                                                  cell_inches * rows + (0.4 if title else 0)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(images):
            ax.axis("off")
            continue
        image = images[i]
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.dtype != np.uint8:
            image = np.clip(image, 0.0, 1.0)
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255 if image.dtype == np.uint8 else 1,
                  interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    for label, row in zip(row_labels or (), axes):
        row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
