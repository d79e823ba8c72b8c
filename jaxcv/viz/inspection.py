"""Figures of what a network learned (the arrays of ``jaxcv.inspection``): filter and
activation mosaics, first vs last epoch, t-SNE scatters, occlusion heat maps, saliency and
Grad-CAM overlays, weight histograms."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from matplotlib.patches import Rectangle

from jaxcv.viz.figure import new_figure, save_figure
from jaxcv.viz.images import _rows

HEAT = "jet"
"""Colour map of every heat map (probabilities, saliency, Grad-CAM): blue low, red high."""


def _display(image: np.ndarray) -> tuple[np.ndarray, dict]:
    """An image (``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; uint8, or floats in [0, 1]) and the
    ``imshow`` arguments that draw it as it is: grey or colour, full range, pixels sharp."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    top = 255 if image.dtype == np.uint8 else 1.0
    if image.dtype != np.uint8:
        image = np.clip(image, 0.0, 1.0)
    return image, {"cmap": "gray" if image.ndim == 2 else None, "vmin": 0, "vmax": top, "interpolation": "nearest"}


def _grey(image: np.ndarray) -> np.ndarray:
    """An image as a faded grey ``(H, W)`` background in [0, 1] for a heat map on top."""
    image = np.asarray(image, np.float32) / (255.0 if np.asarray(image).dtype == np.uint8 else 1.0)
    return image.mean(-1) if image.ndim == 3 else image


def _aspect(image: np.ndarray) -> float:
    return image.shape[1] / image.shape[0]


def _show_mosaic(ax: Axes, mosaic: np.ndarray, name: str) -> None:
    image, kwargs = _display(mosaic)
    ax.imshow(image, **kwargs)
    ax.set_title(name, fontsize=10)
    ax.axis("off")


def plot_mosaics(panels: Mapping[str, np.ndarray], path: str | Path, *, title: str = "",
                 height_inches: float = 3.0) -> Path:
    """Mosaics (``jaxcv.inspection.filter_grid``, ``activation_grid``: ``(H, W, 1 or 3)`` in
    [0, 1]) side by side, each under its name and as wide as its shape asks: one layer's
    filters, its colour channels, two epochs or two layers."""
    aspects = [_aspect(np.asarray(m)) for m in panels.values()]
    fig = new_figure(height_inches * sum(aspects) + 0.3 * len(panels), height_inches + 0.4 + 0.3 * bool(title))
    axes = fig.subplots(1, len(panels), squeeze=False, gridspec_kw={"width_ratios": aspects})
    for ax, (name, mosaic) in zip(axes[0], panels.items()):
        _show_mosaic(ax, mosaic, name)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_filter_change(before: np.ndarray, after: np.ndarray, distance: np.ndarray, path: str | Path, *,
                       labels: tuple[str, str] = ("first epoch", "last epoch"), title: str = "",
                       height_inches: float = 3.0) -> Path:
    """One conv layer's filter mosaics at two points of training (``FilterChange.before`` and
    ``after``, on one scale) and a bar per filter (numbered row by row) of how far it moved."""
    aspect = _aspect(np.asarray(before))
    fig = new_figure(height_inches * (2 * aspect + 1.6) + 1.0, height_inches + 0.8)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [aspect, aspect, 1.6]})
    for ax, mosaic, label in zip(axes, (before, after), labels):
        _show_mosaic(ax, mosaic, label)
    axes[2].bar(np.arange(len(distance)), np.asarray(distance), color="tab:blue")
    axes[2].set_xlabel("filter (row by row)")
    axes[2].set_ylabel("‖after − before‖")
    axes[2].set_title("how far each filter moved", fontsize=10)
    axes[2].grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_embedding(points: np.ndarray, labels: np.ndarray, path: str | Path, *, images: np.ndarray | None = None,
                   class_names: Sequence[str] | None = None, thumbnails: int = 30, title: str = "",
                   seed: int = 0) -> Path:
    """A 2-D embedding (t-SNE) as a scatter coloured by class, with ``thumbnails`` of the
    ``images`` drawn at their points, framed in their class's colour: chosen to spread over the
    map (each the point farthest from those chosen before, from a random first with ``seed``),
    so that stray points, often mistakes, get one too."""
    points, labels = np.asarray(points), np.asarray(labels)
    classes = np.unique(labels)
    names = class_names or [str(c) for c in range(int(classes.max()) + 1)]
    colours = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    fig = new_figure(8, 7)
    ax = fig.subplots()
    for c in classes:
        at = labels == c
        ax.scatter(points[at, 0], points[at, 1], s=6, color=colours(int(c) % colours.N), label=names[c], alpha=0.8)
    if images is not None and thumbnails:
        for i in _spread(points, thumbnails, seed):
            image, kwargs = _display(images[i])
            box = OffsetImage(image, zoom=24 / max(image.shape[:2]), cmap=kwargs["cmap"], norm=Normalize(0, kwargs["vmax"]))
            ax.add_artist(AnnotationBbox(box, points[i], frameon=True, pad=0.1,
                                         bboxprops={"edgecolor": colours(int(labels[i]) % colours.N), "linewidth": 1.5}))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def _spread(points: np.ndarray, k: int, seed: int) -> list[int]:
    """``k`` indices of ``points`` by farthest-point sampling from a random first one."""
    chosen = [int(np.random.default_rng(seed).integers(len(points)))]
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < min(k, len(points)):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return chosen


def _heat_axes(rows: int, cols: int, cell_inches: float, title: str) -> tuple[Figure, np.ndarray, Axes]:
    """A figure of ``rows`` x ``cols`` square cells, ticks hidden, and a narrow column on the
    right for the heat maps' one colour bar: the figure, its 2-D array of cells, the bar's axes."""
    fig = new_figure(cell_inches * cols + 0.9, cell_inches * rows + 0.4 * bool(title))
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=[1] * cols + [0.06])
    axes = np.array([[fig.add_subplot(grid[r, c]) for c in range(cols)] for r in range(rows)])
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes, fig.add_subplot(grid[:, -1])


def plot_occlusion(images: np.ndarray, true_prob: np.ndarray, path: str | Path, *, patch: int, stride: int,
                   titles: Sequence[str] | None = None, cols: int | None = None, title: str = "",
                   label: str = "probability of the true class") -> Path:
    """Occlusion maps (``OcclusionMaps.true_prob``, ``(N, P, Q)``) over their images: the
    probability with the patch centred on each pixel, and the position that lowers it most
    outlined (a ``patch``-sized white square)."""
    images, true_prob = np.asarray(images), np.asarray(true_prob)
    cols = cols or math.ceil(len(images) / _rows(len(images), None))
    fig, axes, bar = _heat_axes(math.ceil(len(images) / cols), cols, 2.0, title)
    for ax in axes.flat[len(images):]:
        ax.axis("off")
    start = (patch - 1) / 2 - stride / 2  # the first patch's centre, less half a cell
    for i, ax in enumerate(axes.flat[: len(images)]):
        h, w = images[i].shape[:2]
        p, q = true_prob[i].shape
        ax.imshow(_grey(images[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        heat = ax.imshow(true_prob[i], cmap=HEAT, vmin=0, vmax=1, alpha=0.55, interpolation="nearest",
                         extent=(start, start + q * stride, start + p * stride, start))
        r, c = divmod(int(np.argmin(true_prob[i])), q)
        ax.add_patch(Rectangle((c * stride - 0.5, r * stride - 0.5), patch, patch, fill=False, edgecolor="white",
                               linewidth=1.5))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.colorbar(heat, cax=bar, label=label)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_attributions(images: np.ndarray, maps: Mapping[str, np.ndarray], path: str | Path, *,
                      titles: Sequence[str] | None = None, title: str = "") -> Path:
    """One row per image: the image, then each map (``(N, H, W)``: saliency, Grad-CAM ...)
    stretched to [0, 1] per image and laid over it."""
    images = np.asarray(images)
    n, columns = len(images), 1 + len(maps)
    fig, axes, bar = _heat_axes(n, columns, 2.0, title)
    heat = None
    for i in range(n):
        image, kwargs = _display(images[i])
        axes[i, 0].imshow(image, **kwargs)
        axes[i, 0].set_ylabel(titles[i] if titles is not None else "", fontsize=8)
        for ax, (name, m) in zip(axes[i, 1:], maps.items()):
            m = np.asarray(m[i], np.float32)
            m = (m - m.min()) / max(float(m.max() - m.min()), 1e-12)
            ax.imshow(_grey(images[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            heat = ax.imshow(m, cmap=HEAT, vmin=0, vmax=1, alpha=0.5, interpolation="bilinear")
            if i == 0:
                ax.set_title(name, fontsize=10)
        if i == 0:
            axes[i, 0].set_title("image", fontsize=10)
    if heat is not None:
        fig.colorbar(heat, cax=bar, label="relative importance (per image)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_histograms(series: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], path: str | Path, *,
                    title: str = "", xlabel: str = "weight", log: bool = False) -> Path:
    """One panel per parameter array (``conv1/kernel`` ...): each series' histogram
    (``jaxcv.inspection.Histogram``: counts, edges) as a step line, e.g. the first and the last
    epoch, or the change between them."""
    layers = list(dict.fromkeys(name for histograms in series.values() for name in histograms))
    cols = min(4, len(layers))
    rows = math.ceil(len(layers) / cols)
    fig = new_figure(3.4 * cols, 2.6 * rows + 0.4 * bool(title))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, layer in zip(axes.flat, layers):
        for name, histograms in series.items():
            if layer in histograms:
                counts, edges = (np.asarray(a) for a in histograms[layer])
                ax.stairs(counts, edges, label=name, linewidth=1.2)
        ax.set_title(layer, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(layers):]:
        ax.axis("off")
    if len(series) > 1:
        axes.flat[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
