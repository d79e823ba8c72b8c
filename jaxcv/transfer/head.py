"""New heads: a classifier of any size in place of a network's old one, and a backbone's top
standing alone to train on cached features."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax

from jaxcv.models.backbone import Backbone, Features, dense_top, glorot_uniform
from jaxcv.train.freeze import head_layers, layer_order

Variables = dict[str, Any]


class Head(nn.Module):
    """Dense layers on features: flatten, hidden ReLU layers ``fc1`` ... (dropout after each),
    ``output`` logits.  Built by ``head_of(backbone)`` its layers are the backbone's top, by
    name and shape, so a head trained on cached features goes back with ``merge_head``."""

    num_classes: int
    hidden: Sequence[int] = ()
    dropout_rate: float = 0.0
    output: str = "predictions"
    kernel_init: nn.initializers.Initializer = glorot_uniform

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, Features]:
        feats: Features = {}
        logits = dense_top(x, feats, num_classes=self.num_classes, hidden=self.hidden,
                           dropout_rate=self.dropout_rate, train=train, output=self.output,
                           kernel_init=self.kernel_init)
        return logits, feats


def head_of(model: Backbone) -> Head:
    """The top of ``model`` (its ``num_classes``, ``top``, ``dropout_rate``) as a ``Head``."""
    return Head(model.num_classes, tuple(model.top), model.dropout_rate, model.output_name, model.dense_init)


def merge_head(variables: Variables, head_params: dict[str, Any]) -> Variables:
    """A backbone's ``variables`` with its top's parameters replaced by a trained ``Head``'s."""
    return {**variables, "params": {**variables["params"], **head_params}}


def new_head(model: nn.Module, variables: Variables, num_classes: int, sample_input: Any, *,
             top: Sequence[int] | None = None, seed: int = 0) -> tuple[nn.Module, Variables]:
    """``model`` with a new, freshly initialised head of ``num_classes`` outputs (hidden
    ``top`` layers too, for a backbone) and every other layer from ``variables``: the
    pretrained network for a new task.  Works for any jaxcv model with a ``num_classes``
    field: its head is a backbone's top, else its last layer."""
    new_model = model.clone(num_classes=num_classes, **({} if top is None else {"top": tuple(top)}))
    fresh = jax.jit(lambda x: new_model.init(jax.random.key(seed), x, train=False))(sample_input)
    head = set(head_layers(new_model, layer_order(new_model, sample_input)))
    params = {layer: fresh["params"][layer] if layer in head else variables["params"][layer]
              for layer in fresh["params"]}
    return new_model, {**variables, "params": params}
