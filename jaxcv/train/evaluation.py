"""Exact evaluation (every example counted once, padding masked out) and inference of
trained models.

Evaluation compiles one program per model, loss and batch shape: the metric sums of K
stacked models on one batch, run batch by batch.  However many sets a study scores (its
validation set every epoch, then its training and test sets), and whatever their sizes,
the program compiles once.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcv.train import members, parallel
from jaxcv.train.epochs import Arrays
from jaxcv.train.losses import Batch, LossFn, classification, to_float
from jaxcv.train.state import TrainState
from jaxcv.train.steps import Metrics, eval_step


def pad_to_batches(data: Arrays, batch_size: int) -> Arrays:
    """Pad every array to a whole number of batches and add a 0/1 ``mask`` of real examples."""
    n = len(data["image"])
    pad = -n % batch_size
    out = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) for k, v in data.items()}
    out["mask"] = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return out


def device_batches(data: Arrays, batch_size: int, mesh: Mesh) -> list[Batch]:
    """``data`` padded to whole batches (``pad_to_batches``), each batch split over ``mesh``
    (with several processes, each passes all of ``data`` and sends its block of every batch)."""
    padded, block = pad_to_batches(data, batch_size), parallel.local_block(batch_size)
    sharding = parallel.batch_sharded(mesh)
    return [parallel.put_local_batch({k: v[start:start + batch_size][block] for k, v in padded.items()}, sharding)
            for start in range(0, len(padded["mask"]), batch_size)]


def _evaluated(states: TrainState) -> TrainState:
    """What evaluation reads of (stacked) states: the model and its variables, so that one
    program serves every optimizer."""
    return states.replace(step=None, opt_state=None, lr_scale=None, tx=None)


@functools.partial(jax.jit, static_argnames="loss_fn")
def _batch_sums(states: TrainState, batch: Batch, loss_fn: LossFn) -> Metrics:
    """Each of K stacked models' masked metric sums on ``batch``, and the batch's count."""
    return jax.vmap(lambda state: eval_step(state, batch, loss_fn))(states)


def compile_evaluation(states: TrainState, batch: Batch, loss_fn: LossFn) -> None:
    """Compile ``mean_metrics``' program for these states and batches ahead of their first use."""
    _batch_sums.lower(_evaluated(states), batch, loss_fn).compile()


def mean_metrics(states: TrainState, batches: list[Batch], loss_fn: LossFn) -> Metrics:
    """Exact mean metrics of K stacked models over ``device_batches`` (arrays of K values).
    The sums add up in batch order, in float32 on the device."""
    states, totals = _evaluated(states), None
    for batch in batches:
        sums = _batch_sums(states, batch, loss_fn)
        totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    count = totals.pop("count")
    return {k: v / count for k, v in totals.items()}


class Evaluator:
    """Validation metrics of K stacked models on a set held on the device."""

    def __init__(self, data: Arrays, *, loss_fn: LossFn, batch_size: int, mesh: Mesh):
        self.host_data, self.mesh, self.loss_fn, self.batch_size = data, mesh, loss_fn, batch_size
        self.batches: list[Batch] = []

    def compile(self, state: TrainState) -> None:
        self.batches = device_batches(self.host_data, self.batch_size, self.mesh)
        compile_evaluation(state, self.batches[0], self.loss_fn)

    def __call__(self, state: TrainState) -> list[dict[str, float]]:
        """One record of ``val_``-prefixed metrics per model."""
        return members.split_metrics(jax.device_get(mean_metrics(state, self.batches, self.loss_fn)), "val_")


def evaluate_arrays(state: TrainState, data: Arrays, *, loss_fn: LossFn = classification,
                    batch_size: int = 256, mesh: Mesh | None = None) -> dict[str, float]:
    """Exact mean metrics (``loss``, ``accuracy`` ...) of one trained model on ``data``, e.g. a
    test split kept apart from the validation set ``fit`` watched (the program that scored its
    validation set, where the batch size is the same)."""
    mesh = parallel.data_mesh() if mesh is None else mesh
    batch_size = -(-batch_size // mesh.size) * mesh.size
    states = parallel.put_replicated(members.stack([_evaluated(state)]), mesh)
    metrics = mean_metrics(states, device_batches(data, batch_size, mesh), loss_fn)
    return {k: float(v[0]) for k, v in jax.device_get(metrics).items()}


def predict(state: TrainState, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """One trained model's outputs (logits, predictions) on ``images`` in inference mode, as a
    host array; ``batch_size`` images per compiled call (the last batch padded)."""
    apply = jax.jit(lambda state, x: state.apply(state.variables(), to_float(x), train=False)[0])
    padded = pad_to_batches({"image": np.asarray(images)}, batch_size)["image"]
    out = [jax.device_get(apply(state, padded[i:i + batch_size])) for i in range(0, len(padded), batch_size)]
    return np.concatenate(out)[: len(images)]
