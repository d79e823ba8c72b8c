"""What an optimised image is scored on: terms over a network's named features, combined.

A *term* maps a ``Probe`` of one image (its network input and the network's features of it,
batch axis removed) and that image's ``unit`` (which channel / class it works on) to a scalar.
Terms are pytrees: their arrays (style targets, weights) are traced, their layer names are
static, so one compiled program serves every objective of the same shape.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcv.errors import UsageError

Features = Mapping[str, jax.Array]


class Probe(NamedTuple):
    """One image as the network saw it.

    ``image`` is the network's input for the image as optimised (``preprocess`` applied, no
    random transform), which regularisers score; ``features`` are the network's named features
    (and ``"outputs"``) of the randomly transformed image, which the other terms score.
    """

    image: jax.Array
    features: Features


class Term(Protocol):
    """A scalar score of one image; ``layers`` names the features it reads."""

    layers: tuple[str, ...]

    def __call__(self, probe: Probe, unit: jax.Array) -> jax.Array: ...


def gram_matrix(features: jax.Array) -> jax.Array:
    """``F^T F`` of ``(H, W, C)`` features flattened to ``(H*W, C)``: the ``(C, C)`` channel
    correlations that describe a style (Gatys et al. 2015), unnormalised as in Keras."""
    flat = features.reshape(-1, features.shape[-1])
    return flat.T @ flat


@struct.dataclass
class Activation:
    """The mean activation of channel ``unit`` of a convolutional ``layer`` (over space), or of
    unit ``unit`` of a dense one (a class logit when ``layer`` is ``"outputs"``)."""

    layer: str = struct.field(pytree_node=False)

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def __call__(self, probe: Probe, unit: jax.Array) -> jax.Array:
        values = jnp.take(probe.features[self.layer], unit, axis=-1)
        return jnp.mean(values)


@struct.dataclass
class LayerL2:
    """Deep dream's score: the sum of squared activations of ``layer`` without a ``border``
    (Keras' example skips 2 pixels each side against edge artefacts), over the layer's size."""

    layer: str = struct.field(pytree_node=False)
    border: int = struct.field(pytree_node=False, default=2)

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def __call__(self, probe: Probe, unit: jax.Array) -> jax.Array:
        x = probe.features[self.layer]
        if x.ndim == 3:
            b = min(self.border, (min(x.shape[:2]) - 1) // 2)
            inner = x[b : x.shape[0] - b, b : x.shape[1] - b]
        else:
            inner = x
        return jnp.sum(jnp.square(inner)) / x.size


@struct.dataclass
class Content:
    """The summed squared difference between ``layer``'s features and ``target`` (Keras'
    content loss)."""

    layer: str = struct.field(pytree_node=False)
    target: jax.Array

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def __call__(self, probe: Probe, unit: jax.Array) -> jax.Array:
        return jnp.sum(jnp.square(probe.features[self.layer] - self.target))


@struct.dataclass
class Style:
    """``sum_l weights[l] * ||gram(features_l) - targets[l]||^2`` over the style layers."""

    targets: dict[str, jax.Array]
    weights: dict[str, jax.Array]

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.targets)

    def __call__(self, probe: Probe, unit: jax.Array) -> jax.Array:
        return sum(self.weights[name] * jnp.sum(jnp.square(gram_matrix(probe.features[name]) - target))
                   for name, target in self.targets.items())


@struct.dataclass
class Objective:
    """``loss = sum(w * minimise[name]) - sum(w * maximise[name])``, what the engine minimises;
    ``weights`` default to 1 and must be >= 0 (the sign is in which mapping a term is in)."""

    minimise: dict[str, Term] = struct.field(default_factory=dict)
    maximise: dict[str, Term] = struct.field(default_factory=dict)
    weights: dict[str, float] = struct.field(default_factory=dict)

    @property
    def layers(self) -> tuple[str, ...]:
        """Every feature name a term reads, in order, once."""
        terms = [*self.minimise.values(), *self.maximise.values()]
        return tuple(dict.fromkeys(layer for term in terms for layer in term.layers))

    def check(self) -> None:
        """``UsageError`` for a name in both mappings, a weight of no term, or a negative or
        non-finite weight.  Call it on concrete values (``optimise`` does)."""
        if both := sorted(set(self.minimise) & set(self.maximise)):
            raise UsageError(f"objective: term(s) {', '.join(both)} both minimised and maximised; rename one")
        names = {*self.minimise, *self.maximise}
        if stray := sorted(set(self.weights) - names):
            raise UsageError(f"objective: weight(s) for no term: {', '.join(stray)}; "
                             f"terms are {', '.join(sorted(names))}")
        for name, weight in self.weights.items():
            _check_weight(f"weight of {name!r}", weight)
        for name, term in {**self.minimise, **self.maximise}.items():
            if isinstance(term, Style):
                for layer, weight in term.weights.items():
                    _check_weight(f"{name!r} weight of layer {layer!r}", weight)

    def check_units(self, units: np.ndarray, shapes: Mapping[str, tuple[int, ...]]) -> None:
        """``UsageError`` if a unit is not a channel of a layer an ``Activation`` term reads."""
        for term in {**self.minimise, **self.maximise}.values():
            if isinstance(term, Activation) and len(units):
                channels = shapes[term.layer][-1]
                if units.min() < 0 or units.max() >= channels:
                    raise UsageError(f"unit(s) {units.min()}..{units.max()} out of range for {term.layer}, "
                                     f"which has units 0..{channels - 1}")

    def __call__(self, probe: Probe, unit: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The loss and every term's unweighted value."""
        values = {name: term(probe, unit) for name, term in {**self.minimise, **self.maximise}.items()}
        loss = sum(self.weights.get(name, 1.0) * values[name] for name in self.minimise)
        loss = loss - sum(self.weights.get(name, 1.0) * values[name] for name in self.maximise)
        return jnp.asarray(loss, jnp.float32), values


def _check_weight(what: str, weight: float | jax.Array) -> None:
    weight = float(weight)
    if not math.isfinite(weight) or weight < 0:
        raise UsageError(f"objective: {what} is {weight}; weights must be finite and >= 0")
