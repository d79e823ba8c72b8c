"""The train state: params, BatchNorm statistics, optimizer state, and a learning-rate scale."""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxcv.errors import UsageError


class TrainState(struct.PyTreeNode):
    """Everything a train step reads and writes; a pytree, so it jits, vmaps, shards and
    checkpoints.

    ``lr_scale`` multiplies every update: callbacks such as reduce-LR-on-plateau change it
    between epochs without recompiling, on top of any optax schedule.  ``hparams`` are
    values of the model's fields (``{"dropout_rate": 0.3}``) held as arrays, so that K
    states stacked for ``jax.vmap`` can differ in them.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: optax.OptState
    lr_scale: jax.Array
    hparams: dict[str, jax.Array]
    model: nn.Module = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    def variables(self) -> dict[str, Any]:
        """The ``variables`` dict that ``apply`` takes."""
        if self.batch_stats:
            return {"params": self.params, "batch_stats": self.batch_stats}
        return {"params": self.params}

    def apply(self, variables: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """``model.apply`` with the model's fields set from ``hparams``."""
        model = self.model.clone(**self.hparams) if self.hparams else self.model
        return model.apply(variables, *args, **kwargs)


def create_state(model: nn.Module, tx: optax.GradientTransformation, sample_input: jax.Array,
                 rng: jax.Array) -> TrainState:
    """Initialise ``model`` on ``sample_input`` (a float batch) and ``tx`` on its params."""
    with refusing_empty_inputs(model, sample_input.shape):
        variables = model.init(rng, sample_input, train=False)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        lr_scale=jnp.ones((), jnp.float32),
        hparams={},
        model=model,
        tx=tx,
    )


@contextlib.contextmanager
def refusing_empty_inputs(model: nn.Module, input_shape: Sequence[int]) -> Iterator[None]:
    """While ``model`` is traced in the block on inputs of ``input_shape``: a layer whose input
    has no elements (images too small for the model's pooling) is a ``UsageError`` naming it,
    instead of a ZeroDivisionError in its initializer."""
    with nn.intercept_methods(functools.partial(_refuse_empty_inputs, model, tuple(input_shape))):
        yield


def _refuse_empty_inputs(model: nn.Module, shape: tuple[int, ...], next_fun: Callable, args: tuple, kwargs: dict,
                         context: nn.module.InterceptorContext) -> Any:
    """``nn.intercept_methods``' interceptor of ``refusing_empty_inputs``."""
    empty = next((x.shape for x in (*args, *kwargs.values()) if 0 in getattr(x, "shape", ())), None)
    if empty and context.module.name is not None:  # a layer, not the model's own methods
        raise UsageError(f"{shape[1]}x{shape[2]} images are too small for {type(model).__name__}: its layer "
                         f"{context.module.name!r} would get an input of shape {empty}; use larger images")
    return next_fun(*args, **kwargs)
