"""TensorBoard event files of training runs, written as every epoch ends, so that
``tensorboard --logdir <folder>`` shows the curves while the runs train.

Written with ``tensorboardX`` (no TensorFlow needed).  One folder per model: TensorBoard
draws each as a run of its own, so the K models of a vmapped group can be compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from tensorboardX import SummaryWriter

from jaxcv.train.callbacks import Record

_OTHER_TAGS = {"epoch_seconds": "seconds/epoch", "eval_seconds": "seconds/evaluation",
               "learning_rate": "optimizer/learning_rate", "lr_scale": "optimizer/lr_scale"}


def scalar_tag(key: str) -> str | None:
    """A history key's TensorBoard tag: ``train_loss`` -> ``loss/train`` (train and validation
    share a chart), ``epoch_seconds`` -> ``seconds/epoch`` ...; ``None`` for bookkeeping
    (``epoch``, ``models``)."""
    for split in ("train", "val"):
        if key.startswith(split + "_"):
            return f"{key[len(split) + 1:]}/{split}"
    return _OTHER_TAGS.get(key)


class TensorBoardLog:
    """Scalars per epoch of K models, model k's under ``root / names[k]``; an ``on_epoch`` hook
    for ``fit_many``.  A model's folder is created at its first record, so a finished run
    that is resumed writes nothing."""

    def __init__(self, root: str | Path, names: Sequence[str]):
        self.dirs = [Path(root) / name for name in names]
        self._writers: dict[int, SummaryWriter] = {}

    def __call__(self, epoch: int, records: Mapping[int, Record]) -> None:
        """Write each model's record of ``epoch`` and flush, so a running TensorBoard sees it."""
        for i, record in records.items():
            if i not in self._writers:
                self._writers[i] = SummaryWriter(str(self.dirs[i]))
            for key, value in record.items():
                if (tag := scalar_tag(key)) is not None:
                    self._writers[i].add_scalar(tag, value, epoch)
            self._writers[i].flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
