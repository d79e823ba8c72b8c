"""Per-example losses and metrics: ``fn(outputs, batch) -> {"loss": (B,), ...}``.

Per-example values let evaluation weight out padding exactly; the steps average them.
"""

from __future__ import annotations

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


def reconstruction(logits: jax.Array, batch: Batch) -> dict[str, jax.Array]:
    """Binary cross-entropy of sigmoid ``logits`` against ``batch["target"]`` in [0, 1]."""
    bce = optax.sigmoid_binary_cross_entropy(logits, batch["target"])
    return {"loss": bce.reshape(bce.shape[0], -1).mean(-1)}
