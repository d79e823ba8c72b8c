"""Deterministic renderer of the generated-shapes images (report 004 and a CIFAR-shaped set).

Each shape is an implicit "inside" test in its own unit frame; an image samples it on a
supersampled pixel grid after a random scale, rotation and translation, so edges are
anti-aliased.  Everything is NumPy and seeded: the same seed gives the same images.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Inside = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _polygon(vertices: np.ndarray) -> Inside:
    """Even-odd point-in-polygon test for any simple polygon."""
    vx, vy = vertices[:, 0], vertices[:, 1]
    wx, wy = np.roll(vx, -1), np.roll(vy, -1)

    def inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = x[..., None], y[..., None]
        crosses = (vy > y) != (wy > y)
        x_at = vx + (y - vy) * (wx - vx) / np.where(wy == vy, 1.0, wy - vy)
        return (crosses & (x < x_at)).sum(-1) % 2 == 1

    return inside


def _regular(n: int) -> np.ndarray:
    angles = 2 * np.pi * np.arange(n) / n + np.pi / 2
    return np.stack([np.cos(angles), np.sin(angles)], -1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    outer = _regular(2 * points)
    return outer * np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)[:, None]


_CROSS = np.array([[-0.3, 1], [0.3, 1], [0.3, 0.3], [1, 0.3], [1, -0.3], [0.3, -0.3],
                   [0.3, -1], [-0.3, -1], [-0.3, -0.3], [-1, -0.3], [-1, 0.3], [-0.3, 0.3]])

SHAPES: dict[str, Inside] = {
    "square": _polygon(np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.8),
    "circle": lambda x, y: x**2 + y**2 <= 1,
    "triangle": _polygon(_regular(3)),
    "ellipse": lambda x, y: (x / 1.0) ** 2 + (y / 0.5) ** 2 <= 1,
    "ring": lambda x, y: (0.36 <= x**2 + y**2) & (x**2 + y**2 <= 1),
    "pentagon": _polygon(_regular(5)),
    "hexagon": _polygon(_regular(6)),
    "star": _polygon(_star()),
    "cross": _polygon(_CROSS),
    "crescent": lambda x, y: (x**2 + y**2 <= 1) & ((x - 0.45) ** 2 + y**2 > 0.64),
}
"""Shape name -> inside test on the unit frame (each shape lies within [-1, 1] x [-1, 1])."""

CLASSIC_SHAPES = ("square", "circle", "triangle")
CIFAR_SHAPES = ("circle", "ellipse", "ring", "triangle", "square", "pentagon", "hexagon",
                "star", "cross", "crescent")


def coverage(inside: Inside, size: int, centre: np.ndarray, radius: float, angle: float,
             supersample: int = 3) -> np.ndarray:
    """Fraction of each pixel of a ``size x size`` image covered by the placed shape."""
    step = 1.0 / supersample
    offsets = (np.arange(supersample) + 0.5) * step
    grid = (np.arange(size)[:, None] + offsets[None, :]).reshape(-1)
    py, px = np.meshgrid(grid, grid, indexing="ij")
    dx, dy = (px - centre[0]) / radius, (py - centre[1]) / radius
    c, s = np.cos(angle), np.sin(angle)
    x, y = c * dx + s * dy, -s * dx + c * dy
    near = (np.abs(x) <= 1) & (np.abs(y) <= 1)  # every shape of SHAPES lies within [-1, 1] x [-1, 1]
    hit = np.zeros(x.shape, np.float32)
    hit[near] = inside(x[near], -y[near])  # the box around the shape, not the whole image
    return hit.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def classic_ink(rng: np.random.Generator, label: int, size: int = 72, free: bool = False) -> np.ndarray:
    """The ink (coverage in [0, 1]) of one report-004 square / circle / triangle, ``(size, size)``.

    ``free=False`` centres an upright shape of random size (the easy problem); ``free=True``
    also moves and rotates it (the "more difficult" problem).
    """
    radius = rng.uniform(0.15, 0.45) * size
    if free:
        centre = rng.uniform(radius * 0.8, size - radius * 0.8, size=2)
        angle = rng.uniform(0, 2 * np.pi)
    else:
        centre, angle = np.full(2, size / 2), 0.0
    return coverage(SHAPES[CLASSIC_SHAPES[label]], size, centre, radius, angle)


def ink_image(ink: np.ndarray, rng: np.random.Generator, noise: float = 0.0) -> np.ndarray:
    """Dark ``ink`` on white plus uniform noise in ``[0, noise)`` (on a 0..1 intensity scale,
    as the report's generator added it), stretched to 0..255: uint8 of ``ink``'s shape."""
    img = 1.0 - ink + noise * rng.random(ink.shape)
    img = (img - img.min()) / max(img.max() - img.min(), 1e-6)
    return np.round(img * 255).astype(np.uint8)


def render_classic(rng: np.random.Generator, label: int, size: int = 72, free: bool = False,
                   noise: float = 0.0) -> np.ndarray:
    """Report 004's task: a dark square / circle / triangle on white, ``(size, size)`` uint8
    (``classic_ink`` placed, ``ink_image`` with ``noise``)."""
    return ink_image(classic_ink(rng, label, size, free), rng, noise)


def polygon_coverage(vertices: np.ndarray, size: int, supersample: int = 3) -> np.ndarray:
    """Fraction of each pixel of a ``size x size`` image inside the polygon ``vertices``
    (``(n, 2)`` as ``(x, y)`` = (column, row) in pixels; pixel ``(r, c)`` spans
    ``[c, c + 1) x [r, r + 1)``).  Only the polygon's bounding window is sampled."""
    lo = np.clip(np.floor(vertices.min(0)).astype(int), 0, size)
    hi = np.clip(np.ceil(vertices.max(0)).astype(int), 0, size)
    out = np.zeros((size, size), np.float32)
    if (hi <= lo).any():
        return out
    offsets = (np.arange(supersample) + 0.5) / supersample
    xs = (np.arange(lo[0], hi[0])[:, None] + offsets).reshape(-1)
    ys = (np.arange(lo[1], hi[1])[:, None] + offsets).reshape(-1)
    py, px = np.meshgrid(ys, xs, indexing="ij")
    hit = _polygon(vertices)(px, py).astype(np.float32)
    h, w = hi[1] - lo[1], hi[0] - lo[0]
    out[lo[1]:hi[1], lo[0]:hi[0]] = hit.reshape(h, supersample, w, supersample).mean(axis=(1, 3))
    return out


def render_triangle(rng: np.random.Generator, size: int = 72, noise: float = 0.0,
                    min_area: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Report 004's regression task: a dark triangle with three random vertices, ``(size, size)``
    uint8, and its vertices ``(x0, y0, x1, y1, x2, y2)`` float32 in [0, 1] (pixels / ``size``),
    in the random order they were drawn.  Triangles smaller than ``min_area`` of the image
    are drawn again."""
    while True:
        vertices = rng.uniform(0.05, 0.95, size=(3, 2))
        (x0, y0), (x1, y1), (x2, y2) = vertices
        if abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)) / 2 >= min_area:
            break
    image = ink_image(polygon_coverage(vertices * size, size), rng, noise)
    return image, vertices.reshape(-1).astype(np.float32)


def render_cifar(rng: np.random.Generator, label: int, size: int = 32) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 colour image of shape ``CIFAR_SHAPES[label]``.

    Random size, position, rotation and colours on a background gradient with a small
    distractor disc and pixel noise: learnable in a few epochs, not in one.
    """
    radius = rng.uniform(0.3, 0.46) * size
    centre = rng.uniform(radius * 0.8, size - radius * 0.8, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    ink = coverage(SHAPES[CIFAR_SHAPES[label]], size, centre, radius, angle)[..., None]

    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0, 1, 3)
    g = rng.uniform(-0.2, 0.2, size=2)
    background = base + (g[0] * xx + g[1] * yy)[..., None]
    blob = coverage(SHAPES["circle"], size, rng.uniform(0, size, size=2),
                    rng.uniform(0.05, 0.1) * size, 0.0)[..., None]
    background = background * (1 - blob) + rng.uniform(0, 1, 3) * blob
    colour = rng.uniform(0, 1, 3)
    while np.abs(colour - base).max() < 0.4:  # keep the shape visible
        colour = rng.uniform(0, 1, 3)
    img = background * (1 - ink) + colour * ink + rng.normal(0, 0.05, (size, size, 3))
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def shape_mask(images: np.ndarray) -> np.ndarray:
    """``(N, H, W)``: where the shape is in ``shapes/easy`` and ``shapes/hard`` images (uint8,
    ``(N, H, W, 1)``), known from how they are drawn: the ink is at most ``noise / (1 + noise)``
    of full scale (0.3 / 1.3 on ``hard``) and the background at least ``1 / (1 + noise)``, so
    the pixels darker than mid-grey are every fully inked pixel and no blank one."""
    return np.asarray(images)[..., 0] < 128
