"""Activation maximisation (Erhan et al. 2009) as Keras' ``conv_filter_visualization.py`` ran it
in 2016-17 on VGG16 (report 001): for each filter of ``block5_conv1``, 20 normalised gradient
steps from a grey noisy 128x128 image, the best 64 of the first 200 filters shown, each image
standardised for display."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcv.synthesis.engine import Result, Settings
from jaxcv.synthesis.network import Network
from jaxcv.synthesis.objectives import Activation, Objective
from jaxcv.synthesis.optimisers import NormalisedGradient


def filter_objective(layer: str = "conv5_1") -> Objective:
    """Maximise the mean activation of each image's unit of ``layer``."""
    return Objective(maximise={"activation": Activation(layer)})


def filter_settings(iterations: int = 20, step: float = 1 / 255, snapshots: tuple[int, ...] = ()) -> Settings:
    """Keras' loop: ``iterations`` steps of normalised gradient ascent, step 1 on the 0-255
    input, nothing clipped until display."""
    return Settings(iterations=iterations, optimiser=NormalisedGradient(step), clip=False, snapshots=snapshots)


def grey_noise(key: jax.Array, count: int, size: int = 128) -> jax.Array:
    """``count`` mid-grey images with uniform noise of 10 grey levels.  (Keras put 128 +- 10
    straight into VGG16's mean-subtracted input, which is near white; mid-grey is the neutral
    start on any network.)"""
    return 0.5 + jax.random.uniform(key, (count, size, size, 3), minval=-10 / 255, maxval=10 / 255)


def display(image: np.ndarray) -> np.ndarray:
    """Keras' ``deprocess_image``: centred, standard deviation 0.1 around grey, clipped to ``[0, 1]``."""
    image = np.asarray(image, np.float32)
    image = (image - image.mean()) / (image.std() + 1e-5) * 0.1 + 0.5
    return np.clip(image, 0.0, 1.0)


def best_units(result: Result, count: int = 64) -> np.ndarray:
    """Positions in the batch of the ``count`` highest final activations among those above 0
    (Keras skipped the filters stuck at 0), best first."""
    activation = result.terms["activation"][:, -1]
    order = [i for i in np.argsort(-activation, kind="stable") if activation[i] > 0]
    return np.asarray(order[:count], dtype=int)


def channel_means(network: Network, layer: str, images: jax.Array, batch_size: int = 16) -> np.ndarray:
    """Each of ``images``' (``(N, H, W, 3)`` in ``[0, 1]``) mean over space of every channel of
    ``layer``, ``(N, C)``, computed ``batch_size`` images at a time."""
    return np.asarray(_channel_means(network, layer, batch_size, jnp.asarray(images, jnp.float32)))


@functools.partial(jax.jit, static_argnames=("layer", "batch_size"))
def _channel_means(network: Network, layer: str, batch_size: int, images: jax.Array) -> jax.Array:
    def one(image: jax.Array) -> jax.Array:
        features = network.features(network.preprocess(image[None]))[layer][0]
        return features.reshape(-1, features.shape[-1]).mean(0)

    return jax.lax.map(one, images, batch_size=min(batch_size, len(images)))
