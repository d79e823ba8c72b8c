"""Freezing layers for transfer learning: trainable sets by name, optax masks over parameter
paths, frozen BatchNorm in inference mode, and report 002's two-stage recipe.

A trainable set is a comma-separated string (or a list) of terms over the model's layers in
forward order (layers are the modules that own parameters, ``/``-joined paths):

- ``all``; ``head``: a backbone's top (``fc1``, ``fc2``, ``predictions``), the last layer of
  any other model (its classifier);
- ``from:LAYER``: that layer (or the first one its prefix matches) and every layer after it;
- ``last:N``: the last N layers (report 003's "only the last five": ``last:5``);
- a layer name or prefix: ``block5``, ``layer4``, ``conv5_block16`` (see ``layer_matches``).

The other layers are frozen: ``optax.set_to_zero`` replaces their updates (so weight decay
and momentum never move them either), and their BatchNorm layers run in inference mode
(the model's ``frozen`` field, Keras' behaviour), so their statistics never change.
Training a frozen network's BatchNorm statistics on a small new set is a classic cause of
fine-tuning whose loss does not decrease.
"""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple, Sequence

import flax.linen as nn
import jax
import optax

from jaxcv.errors import UsageError
from jaxcv.models.backbone import Backbone, layer_matches
from jaxcv.train.optim import make_optimizer
from jaxcv.train.state import TrainState

TRAINABLE_HELP = "'all', 'head', 'from:LAYER', 'last:N' or layer names / prefixes, comma-separated"


def _layers(tree: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Paths of the modules that hold arrays (layers) in a variables tree, in the tree's order."""
    for key, value in tree.items():
        if isinstance(value, dict):
            if any(not isinstance(v, dict) for v in value.values()):
                yield f"{prefix}{key}"
            yield from _layers(value, f"{prefix}{key}/")


def layer_order(model: nn.Module, sample_input: Any) -> list[str]:
    """``model``'s layers in the order it creates them (its forward order), from an abstract
    init on ``sample_input`` (an array or ``jax.ShapeDtypeStruct``): no weights are computed.
    (A params dict that went through ``jit`` has its keys sorted, so its order is not this.)"""
    order: list[str] = []

    def init(x):
        variables = model.init(jax.random.key(0), x, train=False)
        order.extend(_layers(variables["params"]))
        return variables

    jax.eval_shape(init, sample_input)
    return order


def head_layers(model: nn.Module, layers: Sequence[str]) -> list[str]:
    """A backbone's top, or the last of ``layers`` (the classifier of jaxcv's other models)."""
    return list(model.head_layers()) if isinstance(model, Backbone) else list(layers[-1:])


def select_layers(layers: Sequence[str], trainable: str | Sequence[str], head: Sequence[str]) -> list[str]:
    """The layers (of ``layers``, in order) that the trainable set names; see the module docstring."""
    terms = trainable.split(",") if isinstance(trainable, str) else list(trainable)
    chosen: set[str] = set()
    for term in (t.strip() for t in terms):
        if term == "all":
            chosen.update(layers)
        elif term == "head":
            if not head:
                raise UsageError("trainable 'head': the model has no top (include_top=False); name its layers")
            chosen.update(head)
        elif term.startswith("last:"):
            count = term[len("last:"):]
            if not count.isdigit() or not 1 <= int(count) <= len(layers):
                raise UsageError(f"trainable {term!r}: N must be 1 to {len(layers)}, the model's layers")
            chosen.update(layers[-int(count):])
        else:
            name = term[len("from:"):] if term.startswith("from:") else term
            matches = [i for i, layer in enumerate(layers) if layer_matches(layer, name)]
            if not matches:
                shown = ", ".join(layers if len(layers) <= 7 else [*layers[:4], "...", *layers[-3:]])
                raise UsageError(f"trainable {term!r} matches no layer (layers: {shown}); terms: {TRAINABLE_HELP}")
            chosen.update(layers[matches[0]:] if term.startswith("from:") else [layers[i] for i in matches])
    return [layer for layer in layers if layer in chosen]


def _layer_of(path: tuple) -> str:
    return "/".join(str(k.key) for k in path[:-1])


def mask_updates(tx: optax.GradientTransformation, trainable: Sequence[str]) -> optax.GradientTransformation:
    """``tx`` on the parameters of the ``trainable`` layers, zero updates for all others."""
    trainable = frozenset(trainable)

    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: "trainable" if _layer_of(path) in trainable else "frozen", params)

    return optax.multi_transform({"trainable": tx, "frozen": optax.set_to_zero()}, labels)


def freeze_batchnorm(model: nn.Module, frozen: Sequence[str], batch_stats: dict[str, Any]) -> nn.Module:
    """``model`` with the BatchNorm layers among ``frozen`` in inference mode (and the others not)."""
    frozen = set(frozen)
    frozen_bn = tuple(layer for layer in _layers(batch_stats) if layer in frozen) if batch_stats else ()
    if "frozen" in getattr(model, "__dataclass_fields__", {}):
        return model.clone(frozen=frozen_bn)
    if frozen_bn:
        raise UsageError(f"{type(model).__name__} cannot keep BatchNorm statistics frozen (no 'frozen' field): "
                         f"train {', '.join(frozen_bn[:3])} ... too, or use a backbone")
    return model


def set_trainable(state: TrainState, trainable: str | Sequence[str], tx: optax.GradientTransformation,
                  sample_input: Any) -> TrainState:
    """``state`` set to train only the layers ``trainable`` names, with ``tx`` and a fresh
    optimizer state; the others frozen (zero updates, BatchNorm in inference mode).
    ``sample_input`` (an array or ``jax.ShapeDtypeStruct``) gives the layers' order."""
    layers = layer_order(state.model, sample_input)
    chosen = select_layers(layers, trainable, head_layers(state.model, layers))
    frozen = sorted(set(layers) - set(chosen))
    masked = mask_updates(tx, chosen)
    return state.replace(model=freeze_batchnorm(state.model, frozen, state.batch_stats), tx=masked,
                         opt_state=masked.init(state.params))


class Stage(NamedTuple):
    """One stage of fine-tuning: which layers train, with what, for how long."""

    trainable: str
    optimizer: optax.GradientTransformation
    epochs: int


def two_stage(head_epochs: int, finetune_epochs: int, *, optimizer: str = "adam", head_lr: float = 1e-3,
              finetune_lr: float = 1e-5) -> tuple[Stage, Stage]:
    """Report 002's recipe: the new head alone with everything else frozen, then every layer
    at a lower learning rate (the rates of Keras' transfer-learning guide).  Run each stage
    as ``set_trainable(state, stage.trainable, stage.optimizer, sample)``, then train it."""
    return (Stage("head", make_optimizer(optimizer, head_lr), head_epochs),
            Stage("all", make_optimizer(optimizer, finetune_lr), finetune_epochs))
