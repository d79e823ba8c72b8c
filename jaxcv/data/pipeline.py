"""TFDS input: whole splits as uint8 arrays (to live on the device) or streamed batches.

TensorFlow is used for input only and is hidden from every GPU before anything else runs.
"""

from __future__ import annotations

import os
import socket
from typing import Iterator

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
import tensorflow as tf  # noqa: E402

tf.config.set_visible_devices([], "GPU")

import tensorflow_datasets as tfds  # noqa: E402  (after TF is kept off the GPU)

from jaxcv.data import builders  # noqa: E402,F401  (registers the embedded datasets)
from jaxcv.errors import UsageError  # noqa: E402

Arrays = dict[str, np.ndarray]

EMBEDDED = tuple(f"shapes/{c.name}" for c in builders.Shapes.BUILDER_CONFIGS)
"""Datasets generated offline by jaxcv itself."""
CATALOGUED = ("mnist", "fashion_mnist", "cifar10")
"""Real datasets the studies use; TFDS downloads them on a machine with internet."""
_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


class DataUnavailableError(UsageError):
    """A dataset is neither prepared in the data dir nor downloadable from here."""


def _online(timeout: float = 3.0) -> bool:
    """Whether the TFDS download servers answer; never when ``JAXCV_OFFLINE`` is set."""
    if os.environ.get("JAXCV_OFFLINE"):
        return False
    try:
        socket.create_connection(_DOWNLOAD_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def _unavailable(name: str, data_dir: str | None, why: str) -> DataUnavailableError:
    where = data_dir or "the default TFDS data dir (~/tensorflow_datasets)"
    return DataUnavailableError(
        f"dataset {name!r} is not prepared in {where} and {why}. Prepare it with TFDS on a "
        f"machine with internet and pass that folder with --data-dir, or use an embedded "
        f"dataset that needs no download: {', '.join(EMBEDDED)}."
    )


def prepared_builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """The TFDS builder of ``name``, prepared: generated if embedded, else downloaded once.

    Raises ``DataUnavailableError`` at once (no retries) when it cannot be had offline.
    """
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataUnavailableError(
            f"unknown dataset {name!r}; use a TFDS name such as {', '.join(CATALOGUED)} or an "
            f"embedded one: {', '.join(EMBEDDED)}"
        ) from e
    if builder.is_prepared():
        return builder
    if name not in EMBEDDED and not _online():
        raise _unavailable(name, data_dir, "this machine cannot reach the download servers")
    try:
        builder.download_and_prepare()
    except Exception as e:  # TFDS raises many kinds; all mean the same to a user here
        raise _unavailable(name, data_dir, f"downloading it failed ({type(e).__name__})") from e
    return builder


def load_split(name: str, split: str, data_dir: str | None = None) -> Arrays:
    """A whole split in memory: ``image`` uint8 ``(N, H, W, C)``, ``label`` int32 ``(N,)``, and
    every other numeric feature of the dataset (``vertices``, ``clean`` ...) under its own name
    (text features such as CIFAR-10's ``id`` are left out: they cannot live on a device)."""
    ds = prepared_builder(name, data_dir).as_dataset(split=split).batch(8192)
    chunks = list(tfds.as_numpy(ds))
    if not chunks:
        raise DataUnavailableError(f"split {split!r} of dataset {name!r} is empty")
    out = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]
           if np.asarray(chunks[0][key]).dtype.kind in "biuf"}
    out["image"] = out["image"].astype(np.uint8, copy=False)
    out["label"] = out["label"].astype(np.int32)
    return out


def stream(name: str, split: str, batch_size: int, data_dir: str | None = None,
           shuffle_seed: int | None = None) -> Iterator[Arrays]:
    """Batches of a split (every feature, as ``load_split``) through ``tf.data``, for datasets
    too big for device memory.  Full batches only; shuffled with ``shuffle_seed`` when one is given.
    """
    ds = prepared_builder(name, data_dir).as_dataset(split=split)
    if shuffle_seed is not None:
        ds = ds.shuffle(10_000, seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda ex: {**{k: v for k, v in ex.items() if v.dtype != tf.string},
                            "label": tf.cast(ex["label"], tf.int32)})
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return iter(tfds.as_numpy(ds))


def num_classes(name: str, data_dir: str | None = None) -> int:
    """Number of classes of a dataset's ``label`` feature (no data is read)."""
    return tfds.builder(name, data_dir=data_dir).info.features["label"].num_classes
