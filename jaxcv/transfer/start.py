"""Starting training from other weights: pretrained layers, a fresh head, frozen layers, as a
``FitOptions.warm_start``, so that fine-tuning runs through ``fit_many`` (vmapped seeds,
checkpoints, resuming) like any other training."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax

from jaxcv.errors import UsageError
from jaxcv.train.freeze import set_trainable
from jaxcv.train.loop import WarmStart
from jaxcv.train.state import TrainState

Variables = dict[str, Any]


def warm_start(variables: Variables | Callable[[int], Variables], sample_input: Any, *,
               trainable: str | Sequence[str] = "all", fresh: Sequence[str] = ()) -> WarmStart:
    """Every model starts from ``variables`` (or ``variables(seed)``, e.g. each seed's state
    after an earlier stage), except the layers ``fresh`` names, which keep their seed's
    initialisation (a new head); only the ``trainable`` layers train (``jaxcv.train.freeze``:
    the others get zero updates and their BatchNorm runs in inference mode).
    ``sample_input`` (an array or ``jax.ShapeDtypeStruct``) gives the layers' order."""
    fresh = frozenset(fresh)
    masked: list[tuple[Any, TrainState]] = []  # (optimizer, the first model's state): one masked optimizer for
    # all the models of a fit, so that their states stack

    def start(seed: int, state: TrainState) -> TrainState:
        source = variables(seed) if callable(variables) else variables
        state = state.replace(params=_take(state.params, source.get("params", {}), fresh),
                              batch_stats=_take(state.batch_stats, source.get("batch_stats", {}), fresh))
        if trainable == "all":
            return state
        first = next((done for tx, done in masked if tx is state.tx), None)
        if first is None:
            masked.append((state.tx, set_trainable(state, trainable, state.tx, sample_input)))
            return masked[-1][1]
        return state.replace(model=first.model, tx=first.tx, opt_state=first.tx.init(state.params))

    return start


def _take(own: dict[str, Any], source: dict[str, Any], fresh: frozenset[str]) -> dict[str, Any]:
    """``own``'s layers from ``source``, but for the ``fresh`` ones; a layer ``source`` lacks
    or holds in another shape is a ``UsageError`` naming it."""
    out = {}
    for layer, value in own.items():
        if layer in fresh:
            out[layer] = value
            continue
        if layer not in source:
            raise UsageError(f"warm start: the weights have no layer {layer!r}; name it in fresh=... to initialise it")
        shapes = jax.tree.map(lambda a: a.shape, (value, source[layer]))
        if shapes[0] != shapes[1]:
            raise UsageError(f"warm start: layer {layer!r} is {shapes[1]} in the weights, {shapes[0]} in the model; "
                             "name it in fresh=... to initialise it")
        out[layer] = source[layer]
    return out
