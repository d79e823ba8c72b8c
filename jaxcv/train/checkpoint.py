"""Orbax checkpoints of the train state and the history, one per epoch, for resuming."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxcv.train.state import TrainState


class Checkpointer:
    """Keeps the last ``keep`` epochs of ``(state, meta)`` under ``directory``; ``meta`` is
    JSON (the histories).

    Saves synchronously: the next epoch donates the state's buffers, so they must be
    written before it starts.
    """

    def __init__(self, directory: str | Path, keep: int = 2):
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(Path(directory).absolute(), options=options)

    def save(self, epoch: int, state: TrainState, meta: Any) -> None:
        self._manager.save(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

    def restore_latest(self, like: TrainState) -> tuple[TrainState, Any] | None:
        """The newest ``(state, meta)``, placed like ``like``; ``None`` if there is none."""
        epoch = self._manager.latest_step()
        if epoch is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self._manager.restore(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return restored.state, restored.meta

    def epochs(self) -> list[int]:
        """The epochs saved, oldest first."""
        return sorted(self._manager.all_steps())

    def restore(self, epoch: int, like: Any) -> tuple[Any, Any]:
        """``(state, meta)`` of ``epoch``, placed like ``like``; without ``like``, the state as
        stored (nested dicts of arrays: a reader that does not know the optimizer)."""
        abstract = None if like is None else jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self._manager.restore(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return restored.state, restored.meta

    def close(self) -> None:
        self._manager.close()
