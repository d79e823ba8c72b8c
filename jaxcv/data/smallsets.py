"""Small transfer-learning sets cut from whole in-memory splits: N images per class (report
002's 50-per-class set), a subset of the classes relabelled 0..k-1 (pretrain on some classes,
fine-tune on the others), images resized and made RGB for a pretrained network's input."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from jaxcv.data.pipeline import Arrays
from jaxcv.errors import UsageError


def per_class(data: Arrays, n: int) -> Arrays:
    """The first ``n`` examples of every class of ``data["label"]``, in the split's order; a
    class with fewer is a ``UsageError`` naming it."""
    labels = data["label"]
    classes, counts = np.unique(labels, return_counts=True)
    if (short := classes[counts < n]).size:
        raise UsageError(f"--train-per-class {n}: class {short[0]} has only {counts[counts < n][0]} training images")
    keep = np.concatenate([np.flatnonzero(labels == c)[:n] for c in classes])
    keep.sort()
    return {k: v[keep] for k, v in data.items()}


def select_classes(data: Arrays, classes: Sequence[int]) -> Arrays:
    """The examples of ``classes`` only, labelled by their place in ``classes`` (0, 1 ...)."""
    relabel = np.full(int(max(data["label"].max(), max(classes))) + 1, -1, np.int32)
    relabel[list(classes)] = np.arange(len(classes), dtype=np.int32)
    keep = np.isin(data["label"], classes)
    return {**{k: v[keep] for k, v in data.items()}, "label": relabel[data["label"][keep]]}


def as_input(images: np.ndarray, size: int | None = None) -> np.ndarray:
    """uint8 NHWC ``images`` as a pretrained network takes them: three channels (grey
    repeated), resized bicubically to ``size`` x ``size`` if given."""
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if size is None or images.shape[1:3] == (size, size):
        return images
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BICUBIC)) for im in images])
