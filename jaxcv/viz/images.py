"""Grids of images (examples, augmentations, reconstructions; polygons drawn over images) as PNGs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from jaxcv.viz.figure import new_figure, save_figure


def _rows(n: int, rows: int | None) -> int:
    """``rows``, or about square for ``n`` cells."""
    return rows or max(1, round(math.sqrt(n)))


def _grid(n: int, rows: int, cell_inches: float, extra_width: float = 0.0, extra_height: float = 0.0
          ) -> tuple[Figure, np.ndarray]:
    """A figure of ``rows`` rows of square cells, enough for ``n``, ticks hidden and the cells past
    ``n`` blank: the figure and its 2-D array of axes."""
    cols = math.ceil(n / rows)
    fig = new_figure(cell_inches * cols + extra_width, cell_inches * rows + extra_height)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
    return fig, axes


def image_grid(images: np.ndarray | Sequence[np.ndarray], path: str | Path, *, titles: Sequence[str] | None = None,
               rows: int | None = None, row_labels: Sequence[str] | None = None, title: str = "",
               cell_inches: float = 1.2) -> Path:
    """Draw ``images`` (each ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; uint8, or floats in
    [0, 1]) row by row in ``rows`` rows (default: about square), with optional per-image
    ``titles``, per-row ``row_labels`` and a figure ``title``; write a PNG to ``path``."""
    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("image_grid needs at least one image")
    rows = _rows(len(images), rows)
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images")
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for {rows} rows")
    fig, axes = _grid(len(images), rows, cell_inches, 1.5 if row_labels else 0.0, 0.4 if title else 0.0)
    for i, ax in enumerate(axes.flat[: len(images)]):
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
    return save_figure(fig, path)


def polygon_grid(images: np.ndarray, polygons: Mapping[str, np.ndarray], path: str | Path, *,
                 rows: int | None = None, title: str = "", cell_inches: float = 1.8) -> Path:
    """Draw grey ``images`` ``(N, H, W[, 1])`` with polygon outlines over them: per name in
    ``polygons``, an array ``(N, 2k)`` of vertices ``(x0, y0, x1, y1, ...)`` as fractions of
    the image's width and height (pixel ``(r, c)`` spans ``[c, c + 1) x [r, r + 1)``), one
    colour each, named in a legend; write a PNG to ``path``."""
    images = np.asarray(images)
    for name, p in polygons.items():
        if len(p) != len(images) or p.shape[-1] % 2:
            raise ValueError(f"polygons {name!r} of shape {p.shape} do not match {len(images)} images")
    fig, axes = _grid(len(images), _rows(len(images), rows), cell_inches, extra_height=0.6)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ax in enumerate(axes.flat[: len(images)]):
        image = images[i].reshape(images.shape[1], images.shape[2])
        h, w = image.shape
        ax.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1, interpolation="nearest")
        for colour, (name, p) in zip(colours, polygons.items()):
            xy = np.asarray(p[i], np.float64).reshape(-1, 2) * (w, h) - 0.5  # imshow puts pixel centres on integers
            ax.add_patch(Polygon(xy, closed=True, fill=False, edgecolor=colour, linewidth=1.5, label=name))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(polygons), fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, rect=(0, 0.06, 1, 1))
