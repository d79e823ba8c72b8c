"""Batches of a split streamed from disk through Grain, for datasets that do not fit on the
device: shuffled per epoch, each host reading its own share, decoded ahead in threads."""

from __future__ import annotations

import os
from typing import Iterator

import jax
import numpy as np

from jaxcv.data.originals import DataUnavailableError
from jaxcv.data.pipeline import ARRAY_RECORD, Arrays, check_split, numeric, prepared_builder
from jaxcv.errors import UsageError


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of ``epoch``: a new permutation every epoch, the same on every host."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def stream(name: str, split: str, batch_size: int, data_dir: str | os.PathLike | None = None,
           shuffle_seed: int | None = None, *, epoch: int = 0, threads: int = 8,
           prefetch: int = 4) -> Iterator[Arrays]:
    """One epoch of ``split`` in batches (every numeric feature, as ``load_split``) of this
    host's share of each global batch of ``batch_size``.

    Without ``shuffle_seed`` the examples come in the dataset's order; with it, in a
    permutation drawn from ``(shuffle_seed, epoch)``.  Only whole global batches are read (the
    last ``N % batch_size`` examples of the permutation are left out), and host ``i`` of ``P``
    (``jax.process_index()`` / ``jax.process_count()``) gets the ``i``-th block of
    ``batch_size // P`` examples of each, the same number of steps on every host: the blocks
    that ``jax.make_array_from_process_local_data`` joins into the global batch one host
    would have read.  ``threads`` decode examples ahead, up to ``prefetch`` batches.
    """
    import grain  # only where streaming is used (its import registers telemetry hooks)

    hosts, host = jax.process_count(), jax.process_index()
    if batch_size < 1 or batch_size % hosts:
        raise UsageError(f"batch size {batch_size} must be a positive multiple of the {hosts} hosts it is split over")
    builder = prepared_builder(name, data_dir)
    check_split(builder, split)
    if builder.info.file_format != ARRAY_RECORD:
        raise DataUnavailableError(
            f"{builder.data_dir} is stored as {builder.info.file_format.value}, which streams only through "
            f"TensorFlow: load it whole with load_split, or prepare it as array_record")
    ds = grain.MapDataset.source(builder.as_data_source(split=split))
    if shuffle_seed is not None:
        ds = ds.shuffle(seed=epoch_seed(shuffle_seed, epoch))
    ds = ds[: len(ds) // batch_size * batch_size].map(numeric)
    ds = ds.batch(batch_size // hosts, drop_remainder=True)[host::hosts]
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)))
