"""How an image moves each iteration: normalised gradient steps, Adam, or a budget of L-BFGS.

Each optimiser has ``init(x) -> state`` and ``iterate(value_fn, x, state) -> (x, state,
value, evaluations)``, where ``value`` is the loss at ``x`` before the iteration and
``evaluations`` the number of loss-and-gradient evaluations it spent; ``value_fn`` maps one
image to the scalar loss being minimised.  Step sizes are in units of the ``[0, 1]`` image.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp
import optax

from jaxcv.errors import UsageError

ValueFn = Callable[[jax.Array], jax.Array]


class Optimiser(Protocol):
    def init(self, x: jax.Array) -> Any: ...

    def iterate(self, value_fn: ValueFn, x: jax.Array, state: Any) -> tuple[jax.Array, Any, jax.Array, jax.Array]:
        ...


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not 0 < value < math.inf:  # NaN too
            raise UsageError(f"{owner}: {name} is {value}; it must be finite and > 0")


def normalise_by_rms(eps: float = 1e-5) -> optax.GradientTransformation:
    """Divide the gradient by its root mean square (plus ``eps``), as Keras'
    ``conv_filter_visualization`` does, so every step has the same size whatever the layer."""
    return optax.stateless(lambda g, params=None: g / (jnp.sqrt(jnp.mean(jnp.square(g))) + eps))


@dataclasses.dataclass(frozen=True)
class _GradientSteps(abc.ABC):
    """One optax step per iteration, its state carried across iterations."""

    @abc.abstractmethod
    def transformation(self) -> optax.GradientTransformation:
        """The optax transformation of one step."""

    def init(self, x: jax.Array) -> optax.OptState:
        return self.transformation().init(x)

    def iterate(self, value_fn: ValueFn, x: jax.Array, state: optax.OptState):
        value, grad = jax.value_and_grad(value_fn)(x)
        updates, state = self.transformation().update(grad, state, x)
        return optax.apply_updates(x, updates), state, value, jnp.asarray(1)


@dataclasses.dataclass(frozen=True)
class NormalisedGradient(_GradientSteps):
    """``x -= step * g / rms(g)``: Keras' filter-visualisation ascent.  Its step of 1 on the
    0-255 "caffe" input is ``1 / 255`` here."""

    step: float = 1 / 255

    def __post_init__(self) -> None:
        _positive("normalised gradient", step=self.step)

    def transformation(self) -> optax.GradientTransformation:
        return optax.chain(normalise_by_rms(), optax.scale(-self.step))


@dataclasses.dataclass(frozen=True)
class Adam(_GradientSteps):
    """Adam with a constant ``learning_rate`` (in ``[0, 1]`` image units per step)."""

    learning_rate: float = 0.01

    def __post_init__(self) -> None:
        _positive("adam", learning_rate=self.learning_rate)

    def transformation(self) -> optax.GradientTransformation:
        return optax.adam(self.learning_rate)


@dataclasses.dataclass(frozen=True)
class LBFGS:
    """One iteration is one L-BFGS run started afresh from the current image that stops once
    it has spent more than ``evaluations`` loss-and-gradient evaluations, at the end of a line
    search: what Keras' examples get from each ``scipy.optimize.fmin_l_bfgs_b(maxfun=20)`` call
    (20 for style, 7 for deep dream).  ``optax.lbfgs`` with its zoom (strong Wolfe) line search
    of at most ``linesearch_steps`` evaluations, ``memory`` past steps."""

    evaluations: int = 20
    memory: int = 10
    linesearch_steps: int = 20

    def __post_init__(self) -> None:
        _positive("l-bfgs", evaluations=self.evaluations, memory=self.memory,
                  linesearch_steps=self.linesearch_steps)

    def init(self, x: jax.Array) -> None:
        return None

    def iterate(self, value_fn: ValueFn, x: jax.Array, state: None):
        solver = optax.lbfgs(memory_size=self.memory, linesearch=optax.scale_by_zoom_linesearch(
            max_linesearch_steps=self.linesearch_steps, initial_guess_strategy="one"))
        value, grad = jax.value_and_grad(value_fn)(x)

        def step(carry):
            x, opt_state, value, grad, evaluations = carry
            updates, opt_state = solver.update(grad, opt_state, x, value=value, grad=grad, value_fn=value_fn)
            spent = optax.tree.get(opt_state, "info").num_linesearch_steps
            return (optax.apply_updates(x, updates), opt_state, optax.tree.get(opt_state, "value"),
                    optax.tree.get(opt_state, "grad"), evaluations + spent)

        carry = (x, solver.init(x), value, grad, jnp.asarray(1))
        x, _, _, _, evaluations = jax.lax.while_loop(lambda carry: carry[-1] <= self.evaluations, step, carry)
        return x, state, value, evaluations
