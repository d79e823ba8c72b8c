"""Where a network puts images: a layer's features for many images, their 2-D t-SNE
embedding, and how well classes separate in it (leave-one-out k-nearest-neighbour accuracy)."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.manifold import TSNE

from jaxcv.errors import UsageError
from jaxcv.inspection.batching import check_batch_size, map_batches
from jaxcv.inspection.layers import Variables, feature, forward


@functools.partial(jax.jit, static_argnames=("model", "layer", "batch_size"))
def _features(model: nn.Module, variables: Variables, images: jax.Array, layer: str | None,
              batch_size: int) -> jax.Array:
    def batch(x: jax.Array) -> jax.Array:
        f = feature(forward(model, variables, x)[1], layer)
        return f.reshape(f.shape[0], -1).astype(jnp.float32)

    return map_batches(batch, images, batch_size)


def features(model: nn.Module, variables: Variables, images: jax.Array, layer: str | None = None, *,
             batch_size: int = 256) -> jax.Array:
    """``(N, D)`` float32: the feature named ``layer`` of every image, flattened; by default the
    last feature the model names, which for jaxcv's classifiers is the penultimate layer
    (``fc1`` of ``mnist_cnn``).  ``batch_size`` images at a time within one compiled call."""
    check_batch_size(batch_size)
    return _features(model, variables, jnp.asarray(images), layer, batch_size)


def check_embedding(points: int, *, perplexity: float | None = None, k: int | None = None) -> None:
    """Refuse a t-SNE ``perplexity`` or a k-NN ``k`` that ``points`` points cannot have: a study
    checks them before it trains, not after its epochs."""
    if perplexity is not None and not 1 <= perplexity < points:
        raise UsageError(f"t-SNE perplexity must be in [1, {points}) for {points} points, got {perplexity:g}")
    if k is not None and not 1 <= k < points:
        raise UsageError(f"k must be in [1, {points - 1}] for {points} points, got {k}")


def tsne(points: np.ndarray | jax.Array, *, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """scikit-learn's Barnes-Hut t-SNE of ``(N, D)`` points to ``(N, 2)``,
    PCA-initialised (stable from run to run) with the given ``seed``.  It runs on the host's
    cores, not in JAX."""
    points = np.asarray(points, np.float32)
    check_embedding(len(points), perplexity=perplexity)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("k", "num_classes", "batch_size"))
def _knn_correct(points: jax.Array, labels: jax.Array, k: int, num_classes: int, batch_size: int) -> jax.Array:
    sq = (points**2).sum(-1)

    def batch(query: tuple[jax.Array, jax.Array]) -> jax.Array:
        x, index = query
        distance = sq[index][:, None] - 2 * x @ points.T + sq[None, :]
        distance = distance.at[jnp.arange(len(index)), index].set(jnp.inf)  # leave the point itself out
        _, nearest = jax.lax.top_k(-distance, k)  # nearest first
        votes = jax.nn.one_hot(labels[nearest], num_classes).sum(1)
        votes = votes + 0.5 * jax.nn.one_hot(labels[nearest[:, 0]], num_classes)  # a tie goes to the nearest
        return jnp.argmax(votes, -1) == labels[index]

    return map_batches(batch, (points, jnp.arange(len(points))), batch_size)


def knn_accuracy(points: jax.Array | np.ndarray, labels: jax.Array | np.ndarray, k: int = 5, *,
                 batch_size: int = 1024) -> float:
    """Leave-one-out k-nearest-neighbour accuracy of ``(N, D)`` points (a 2-D embedding): the
    fraction of points whose ``k`` nearest other points (Euclidean) vote for their own label;
    a tied vote goes to the class of the nearest neighbour.  1 when classes form separate
    clusters, about the largest class's share when labels are unrelated to the points."""
    points, labels = jnp.asarray(points, jnp.float32), jnp.asarray(labels, jnp.int32)
    if points.ndim != 2 or labels.shape != points.shape[:1]:
        raise UsageError(f"knn_accuracy needs (N, D) points and N labels, got {points.shape} and {labels.shape}")
    check_embedding(len(points), k=k)
    check_batch_size(batch_size)
    num_classes = int(labels.max()) + 1
    return float(_knn_correct(points, labels, k, num_classes, batch_size).mean())
