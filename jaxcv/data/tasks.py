"""Loaded splits as the batches of a task: what ``fit`` trains on (``image`` and ``target``).

Classification needs nothing here (``image`` and ``label`` are what ``load_split`` gives).
"""

from __future__ import annotations

import numpy as np

from jaxcv.errors import UsageError

Arrays = dict[str, np.ndarray]


def _need(arrays: Arrays, key: str, dataset: str) -> np.ndarray:
    """``arrays[key]``; a ``UsageError`` where the dataset asked for lacks it (a study's
    ``--dataset`` that is not the task's: one line, not a traceback)."""
    if key not in arrays:
        raise UsageError(f"this task needs a {key!r} feature, which the dataset does not have (it has "
                         f"{', '.join(sorted(arrays))}): use {dataset}, or a dataset with {key!r}")
    return arrays[key]


def sort_vertices(vertices: np.ndarray) -> np.ndarray:
    """Triangles ``(N, 6)`` as ``(x0, y0, x1, y1, x2, y2)`` with their vertices in one canonical
    order, by ``x`` then ``y`` (report 004's fix: a target no longer depends on the order in
    which the vertices were drawn)."""
    v = np.asarray(vertices).reshape(-1, 3, 2)
    order = np.lexsort((v[..., 1], v[..., 0]), axis=-1)
    return np.take_along_axis(v, order[..., None], axis=1).reshape(-1, 6)


def vertex_targets(arrays: Arrays, sort: bool = True) -> Arrays:
    """``shapes/triangles`` arrays as regression batches: ``image`` and the vertices as
    ``target`` float32 ``(N, 6)`` in [0, 1], sorted by ``sort_vertices`` or in drawing order."""
    vertices = _need(arrays, "vertices", "shapes/triangles").astype(np.float32)
    return {"image": arrays["image"], "target": sort_vertices(vertices) if sort else vertices}


def denoise_pairs(arrays: Arrays) -> Arrays:
    """``shapes/denoise`` arrays as denoising batches: the noisy ``image`` and its ``clean``
    twin as ``target`` (uint8; the reconstruction loss reads it as [0, 1])."""
    return {"image": arrays["image"], "target": _need(arrays, "clean", "shapes/denoise")}
