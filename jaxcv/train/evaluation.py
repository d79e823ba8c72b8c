"""Exact evaluation (every example counted once, padding masked out) and inference of
trained models."""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from jaxcv.models.layers import ConvImpl, conv_impl, use_conv_impl
from jaxcv.train import members, parallel
from jaxcv.train.epochs import Arrays, aot_compile
from jaxcv.train.losses import LossFn, classification, to_float
from jaxcv.train.state import TrainState
from jaxcv.train.steps import evaluate


def tight_batch(n: int, batch_size: int, multiple: int = 1) -> int:
    """The smallest batch, a multiple of ``multiple`` (the devices), that covers ``n`` examples
    in as few batches as ``batch_size`` does: 200 images make one batch of 200, not 256 of which
    56 are padding that is computed and masked out; 288 make two of 144, not two of 256."""
    batches = max(1, -(-n // batch_size))  # ceiling divisions
    per_batch = -(-n // batches)
    return -(-per_batch // multiple) * multiple


def pad_to_batches(data: Arrays, batch_size: int) -> Arrays:
    """Pad every array to a whole number of batches and add a 0/1 ``mask`` of real examples."""
    n = len(data["image"])
    pad = -n % batch_size
    out = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in data.items()}
    out["mask"] = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return out


def padded_batches(images: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``images`` in batches of ``batch_size``, the last padded with zeros: one compiled program
    per batch size serves sets of any size (cut the outputs back to ``len(images)``)."""
    padded = pad_to_batches({"image": np.asarray(images)}, batch_size)["image"]
    return [padded[i:i + batch_size] for i in range(0, len(padded), batch_size)]


class Evaluator:
    """Validation metrics of K stacked models on a set held on the device, one compiled call."""

    def __init__(self, data: Arrays, *, loss_fn: LossFn, batch_size: int, mesh: Mesh):
        self.host_data, self.mesh = data, mesh
        batch_size = tight_batch(len(data["image"]), batch_size, mesh.size)
        self.fn = members.vmap(functools.partial(evaluate, loss_fn=loss_fn, batch_size=batch_size,
                                                 sharding=parallel.batch_sharded(mesh)), in_axes=(0, None))
        self.batch_size, self.compiled = batch_size, None

    def compile(self, state: TrainState) -> None:
        self.data = parallel.put_replicated(pad_to_batches(self.host_data, self.batch_size), self.mesh)
        self.compiled = aot_compile(self.fn, state, self.data)

    def __call__(self, state: TrainState) -> list[dict[str, float]]:
        """One record of ``val_``-prefixed metrics per model."""
        return members.split_metrics(jax.device_get(self.compiled(state, self.data)), "val_")


# Jitted once, here: a function jitted per call traces and lowers the model again on every call
# (a repeated 288-image lenet_model1 evaluation took 1.34-1.66 s that way, 0.93-0.98 s this way).
# The conv formulation is an argument, so a ``use_conv_impl`` block still picks the program.
@functools.partial(jax.jit, static_argnames=("loss_fn", "batch_size", "sharding", "conv"))
def _evaluate(state: TrainState, data: Arrays, loss_fn: LossFn, batch_size: int, sharding: NamedSharding,
              conv: ConvImpl) -> dict[str, jax.Array]:
    with use_conv_impl(conv):
        return evaluate(state, data, loss_fn, batch_size, sharding)


@functools.partial(jax.jit, static_argnames="conv")
def _infer(state: TrainState, images: jax.Array, conv: ConvImpl) -> jax.Array:
    with use_conv_impl(conv):
        return state.apply(state.variables(), to_float(images), train=False)[0]


def evaluate_arrays(state: TrainState, data: Arrays, *, loss_fn: LossFn = classification,
                    batch_size: int = 256, mesh: Mesh | None = None) -> dict[str, float]:
    """Exact mean metrics (``loss``, ``accuracy`` ...) of one trained model on ``data``, e.g. a
    test split kept apart from the validation set ``fit`` watched."""
    mesh = parallel.data_mesh() if mesh is None else mesh
    batch_size = tight_batch(len(data["image"]), batch_size, mesh.size)
    padded = parallel.put_replicated(pad_to_batches(data, batch_size), mesh)
    metrics = _evaluate(parallel.put_replicated(state, mesh), padded, loss_fn=loss_fn, batch_size=batch_size,
                        sharding=parallel.batch_sharded(mesh), conv=conv_impl())
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def predict(state: TrainState, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """One trained model's outputs (logits, predictions) on ``images`` in inference mode, as a
    host array; ``batch_size`` images per compiled call (the last batch padded: one program
    serves sets of any size)."""
    conv = conv_impl()
    out = [jax.device_get(_infer(state, batch, conv=conv)) for batch in padded_batches(images, batch_size)]
    return np.concatenate(out)[: len(images)]
