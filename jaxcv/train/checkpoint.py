"""Orbax checkpoints of the train state and a JSON ``meta`` (the histories), one per epoch,
each verified before it is restored, for resuming and for looking at a chosen epoch."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import zlib
from pathlib import Path
from typing import Any, Iterator

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils
from orbax.checkpoint.checkpoint_managers import AnyPreservationPolicy, CustomSteps, LatestN

from jaxcv.errors import UsageError
from jaxcv.files import from_json, read_json, to_json, write_json
from jaxcv.train.state import TrainState

DIGESTS = "jaxcv_digests.json"
"""In each epoch's folder: the size and CRC-32 of every file orbax wrote there."""


class Checkpointer:
    """Keeps the first epoch and the last ``keep`` epochs of ``(state, meta)`` under
    ``directory``, one folder per epoch; ``meta`` is JSON (``jaxcv.files.to_json``).

    Each epoch's folder holds the size and CRC-32 of every file in it, written after them
    (a checksum against damage, not tampering, fast enough to cost little on large states):
    an epoch restores only if they all match, so a truncated, zeroed or overwritten file, a
    missing part, or a save cut short by a kill or a power loss is found before orbax reads
    it.  ``restore_latest`` then falls back to the previous epoch, saying so in one line, and
    moves the damaged folder to ``<directory>.damaged/`` for the user to inspect.

    Saves synchronously: the next epoch donates the state's buffers, so they must be
    written before it starts.  A Ctrl-C during a save or a restore takes effect once it is
    done (orbax's threads, cut short, would print tracebacks, and the epoch would be lost).
    """

    def __init__(self, directory: str | Path, keep: int = 2):
        self.directory = Path(directory).absolute()
        policy = AnyPreservationPolicy([CustomSteps([1]), LatestN(keep)])
        options = ocp.CheckpointManagerOptions(preservation_policy=policy, enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, epoch: int, state: TrainState, meta: Any) -> None:
        with _interrupts_deferred():
            self._manager.save(epoch, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(to_json(meta))))
            folder = self._folder(epoch)
            if jax.process_index() == 0:
                write_json(folder / DIGESTS, _digests(folder))
            _barrier(f"jaxcv digests of epoch {epoch}")

    def epochs(self) -> list[int]:
        """The epochs saved, oldest first (damaged ones included until a restore finds them)."""
        return sorted(self._manager.all_steps())

    def restore(self, epoch: int, like: TrainState) -> tuple[TrainState, Any]:
        """Epoch ``epoch``'s ``(state, meta)``, placed like ``like``; a ``UsageError`` if it is
        not there or is damaged."""
        if epoch not in self.epochs():
            raise UsageError(f"{self.directory} has no checkpoint of epoch {epoch} (it has {self.epochs()})")
        if damage := self._damage(epoch):
            raise UsageError(f"checkpoint {self._folder(epoch)} is damaged: {damage}")
        return self._restore(epoch, like)

    def restore_latest(self, like: TrainState) -> tuple[TrainState, Any] | None:
        """The newest intact ``(state, meta)``, placed like ``like``; ``None`` if there is none.
        Each newer damaged epoch is named on stderr and moved aside."""
        for epoch in reversed(self.epochs()):
            if not (damage := self._damage(epoch)):
                return self._restore(epoch, like)
            aside = self._set_aside(epoch)
            print(f"checkpoint of epoch {epoch} skipped: {damage}; moved to {aside}", file=sys.stderr)
        return None

    def close(self) -> None:
        self._manager.close()

    def _folder(self, epoch: int) -> Path:
        return self.directory / str(epoch)

    def _damage(self, epoch: int) -> str | None:
        """What is wrong with epoch ``epoch``'s files, or ``None`` if they are as saved."""
        folder = self._folder(epoch)
        if not (folder / DIGESTS).is_file():
            return f"{DIGESTS} is missing (saved by an older jaxcv, or the save was cut short)"
        try:
            expected = read_json(folder / DIGESTS)
        except UsageError:
            return f"{DIGESTS} is damaged"
        found = _digests(folder)
        if not isinstance(expected, dict):
            return f"{DIGESTS} is damaged"
        for name, digest in expected.items():
            if name not in found:
                return f"{name} is missing"
            if found[name] != digest:
                return f"{name} differs from what was saved"
        return None

    def _restore(self, epoch: int, like: TrainState) -> tuple[TrainState, Any]:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        with _interrupts_deferred():
            restored = self._manager.restore(epoch, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return restored.state, from_json(restored.meta)

    def _set_aside(self, epoch: int) -> Path:
        """Move epoch ``epoch``'s folder out of the manager's sight, into ``<directory>.damaged``."""
        shelf = self.directory.with_name(self.directory.name + ".damaged")
        shelf.mkdir(exist_ok=True)
        aside = shelf / str(epoch)
        n = 1
        while aside.exists():
            aside, n = shelf / f"{epoch}.{n}", n + 1
        _barrier(f"jaxcv checked epoch {epoch}")  # every process has read it before it moves
        if jax.process_index() == 0:
            self._folder(epoch).rename(aside)
        _barrier(f"jaxcv moved epoch {epoch}")
        self._manager.reload()
        return aside


def _barrier(name: str) -> None:
    """Every process of a multi-process run reaches this point before any goes on (process 0
    alone writes the digests and moves damaged epochs; the others must see the result)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


_DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold back a Ctrl-C (SIGINT), and a SIGTERM that a study turns into one, until the block
    ends, then raise ``KeyboardInterrupt`` (in the main thread; elsewhere Python delivers no
    signal).  Signals left to the OS's default (not Python's handlers) stay as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: h for s in _DEFERRED_SIGNALS if callable(h := signal.getsignal(s))}
    received = []
    for s in previous:
        signal.signal(s, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        raise KeyboardInterrupt


def _digests(folder: Path) -> dict[str, list[int]]:
    """``{relative path: [size, crc32]}`` of every file under ``folder`` but the digests."""
    return {str(path.relative_to(folder)): [path.stat().st_size, _crc32(path)]
            for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != DIGESTS)}


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc
