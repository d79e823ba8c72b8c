"""Per-example losses and metrics: ``fn(outputs, batch) -> {"loss": (B,), ...}``.

Per-example values let evaluation weight out padding exactly; the steps average them.
"""

from __future__ import annotations

import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import optax

Batch = dict[str, jax.Array]
LossFn = Callable[[jax.Array, Batch], dict[str, jax.Array]]


def classification(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """Softmax cross-entropy against integer ``batch["label"]``, and accuracy."""
    labels = batch["label"]
    return {
        "loss": optax.softmax_cross_entropy_with_integer_labels(logits, labels),
        "accuracy": (jnp.argmax(logits, -1) == labels).astype(jnp.float32),
    }


def regression(predictions: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """Mean squared error against ``batch["target"]``, averaged over each example."""
    err = (predictions - batch["target"]) ** 2
    return {"loss": err.reshape(err.shape[0], -1).mean(-1)}


def vertex_regression(predictions: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """``regression`` of polygon vertices ``(B, 2n)`` as ``(x0, y0, x1, y1, ...)``, plus
    ``matched_mse``: the MSE under the best of the n! vertex orders, a score that does not
    depend on the order of the targets (sorted or not)."""
    metrics = regression(predictions, batch)
    p = predictions.reshape(predictions.shape[0], -1, 2)
    t = batch["target"].reshape(p.shape)
    perms = jnp.asarray(list(itertools.permutations(range(p.shape[1]))))
    errs = ((p[:, perms] - t[:, None]) ** 2).mean(axis=(2, 3))  # (B, n!)
    return {**metrics, "matched_mse": errs.min(-1)}


def to_float(images: jax.Array) -> jax.Array:
    """uint8 images to float32 in [0, 1]; float images pass through."""
    return images.astype(jnp.float32) / 255.0 if images.dtype == jnp.uint8 else images


def psnr(images: jax.Array, target: jax.Array) -> jax.Array:
    """Per-example peak signal-to-noise ratio (dB) of images in [0, 1] (uint8 read as /255)."""
    mse = ((to_float(images) - to_float(target)) ** 2).reshape(images.shape[0], -1).mean(-1)
    return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, 1e-10))


def reconstruction(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """Binary cross-entropy of sigmoid ``logits`` against ``batch["target"]`` in [0, 1] (uint8
    images are read as /255), and the PSNR of ``sigmoid(logits)``."""
    target = to_float(batch["target"])
    bce = optax.sigmoid_binary_cross_entropy(logits, target)
    return {"loss": bce.reshape(bce.shape[0], -1).mean(-1), "psnr": psnr(jax.nn.sigmoid(logits), target)}
