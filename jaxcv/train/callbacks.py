"""Epoch-end callbacks as pure functions of the history so far.

A callback maps ``(history, state)`` to ``(state, stop)``.  Because it keeps no state of
its own, a run resumed from a checkpoint (history included) behaves exactly like one
that never stopped.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import jax.numpy as jnp

from jaxcv.errors import UsageError
from jaxcv.train.state import TrainState

Record = dict[str, float]
"""One model's numbers of one epoch (``epoch``, ``train_loss``, ``val_accuracy`` ...)."""
History = list[Record]
"""A model's records, one per epoch trained."""


class Callback(Protocol):
    def __call__(self, history: History, state: TrainState) -> tuple[TrainState, bool]: ...


def _epochs_since_best(values: list[float], mode: str, min_delta: float) -> int:
    sign = 1.0 if mode == "min" else -1.0
    best, best_i = math.inf, 0
    for i, v in enumerate(values):
        if sign * v < best - min_delta:
            best, best_i = sign * v, i
    return len(values) - 1 - best_i


def _mode(monitor: str, mode: str) -> str:
    if mode == "auto":
        return "max" if "accuracy" in monitor else "min"
    if mode not in ("min", "max"):
        raise UsageError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    monitor: str = "val_loss"
    patience: int = 5
    min_delta: float = 0.0
    mode: str = "auto"

    def __call__(self, history: History, state: TrainState) -> tuple[TrainState, bool]:
        values = [r[self.monitor] for r in history]
        waited = _epochs_since_best(values, _mode(self.monitor, self.mode), self.min_delta)
        return state, waited >= self.patience


@dataclasses.dataclass(frozen=True)
class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for
    ``patience`` epochs, both overall and since the last reduction; never below ``min_scale``."""

    monitor: str = "val_loss"
    factor: float = 0.1
    patience: int = 3
    min_delta: float = 0.0
    min_scale: float = 1e-4
    mode: str = "auto"

    def __call__(self, history: History, state: TrainState) -> tuple[TrainState, bool]:
        values = [r[self.monitor] for r in history]
        waited = _epochs_since_best(values, _mode(self.monitor, self.mode), self.min_delta)
        scale = float(state.lr_scale)
        since_change = next((i for i, r in enumerate(reversed(history)) if r["lr_scale"] != scale),
                            len(history))
        if min(waited, since_change) >= self.patience and scale > self.min_scale:
            state = state.replace(lr_scale=jnp.float32(max(scale * self.factor, self.min_scale)))
        return state, False
