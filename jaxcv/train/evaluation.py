"""Exact evaluation (every example counted once, padding masked out) and inference of
trained models."""

from __future__ import annotations

import functools
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from jaxcv.errors import UsageError
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


BATCHES_PER_CALL = 8
"""Batches one compiled inference call runs (``predict``, ``transfer.extract_features``).
jax 0.10's XLA:CPU maps a fresh temporary buffer for every call of a program, and the kernel
zeroes its pages as they are first touched; a loop over batches inside the call maps it once.
``python benchmarks/inference.py`` (2026-12-07), seconds for one batch per call against eight:
jax 0.10.2, predict 10,240 images, ``mnist_cnn`` 7.34 / 4.85, ``cifar_cnn`` 12.13 / 7.28, vgg16
features of 1,024 images 19.67 / 15.97; jax 0.11.2, which reuses the buffer, 0.71 / 0.60,
1.98 / 2.17 and 10.96 / 10.16."""


def batch_groups(images: np.ndarray, batch_size: int, per_call: int) -> Iterator[tuple[np.ndarray, int]]:
    """``images`` as groups of ``per_call`` batches of ``batch_size``, ``(per_call, batch_size,
    ...)``, each with the number of its batches that hold images: the last batch is padded with
    zeros and the last group with batches of zeros, so that one compiled program serves sets of any
    size (``map_group`` computes only the ``count`` first batches; ``ungroup`` joins the outputs)."""
    for name, value in (("batch_size", batch_size), ("batches_per_call", per_call)):
        if value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")
    n = len(images)
    if n == 0:
        raise UsageError("no images to run the model on")
    padded = pad_to_batches({"image": np.asarray(images)}, batch_size * per_call)["image"]
    batches = -(-n // batch_size)
    for first in range(0, batches, per_call):
        group = padded[first * batch_size:(first + per_call) * batch_size]
        yield group.reshape(per_call, batch_size, *group.shape[1:]), min(per_call, batches - first)


def map_group(fn: Callable[[jax.Array], jax.Array], group: jax.Array, count: jax.Array | int) -> jax.Array:
    """``fn`` over the ``count`` first batches of a ``batch_groups`` group, in a loop inside the
    compiled call (``count`` traced: one program for every count); the outputs stacked
    ``(per_call, batch_size, ...)``, zeros where no batch was computed."""
    shape = jax.eval_shape(fn, group[0])
    out = jnp.zeros((group.shape[0], *shape.shape), shape.dtype)
    return jax.lax.fori_loop(0, count, lambda i, out: out.at[i].set(fn(group[i])), out)


def ungroup(outputs: list[np.ndarray] | list[jax.Array], n: int) -> np.ndarray | jax.Array:
    """The ``map_group`` outputs of ``batch_groups``' groups as one array of the first ``n``
    (the images' outputs, in order, without the padding), on the host if they are host arrays
    and on the device if not."""
    xp = np if isinstance(outputs[0], np.ndarray) else jnp
    return xp.concatenate(outputs).reshape(-1, *outputs[0].shape[2:])[:n]


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
def _infer(state: TrainState, group: jax.Array, count: jax.Array, conv: ConvImpl) -> jax.Array:
    with use_conv_impl(conv):
        return map_group(lambda images: state.apply(state.variables(), to_float(images), train=False)[0], group, count)


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


def predict(state: TrainState, images: np.ndarray, batch_size: int = 256,
            batches_per_call: int = BATCHES_PER_CALL) -> np.ndarray:
    """One trained model's outputs (logits, predictions) on ``images`` in inference mode, as a
    host array; ``batches_per_call`` batches of ``batch_size`` images per compiled call (the last
    ones padded: one program serves sets of any size)."""
    conv = conv_impl()
    out = [jax.device_get(_infer(state, group, count, conv=conv))
           for group, count in batch_groups(images, batch_size, batches_per_call)]
    return ungroup(out, len(images))
