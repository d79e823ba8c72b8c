"""Activation maximisation (Erhan et al. 2009) as Keras' ``conv_filter_visualization.py`` ran it
in 2016-17 on VGG16 (report 001): for each filter of ``block5_conv1``, 20 normalised gradient
steps from a grey noisy 128x128 image, the best 64 of the first 200 filters shown, each image
standardised for display."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcv.synthesis.engine import Result, Settings
from jaxcv.synthesis.network import Network
from jaxcv.synthesis.objectives import Activation, Objective
from jaxcv.synthesis.optimisers import NormalisedGradient
from jaxcv.synthesis.transforms import Jitter


def filter_objective(layer: str = "conv5_1") -> Objective:
    """Maximise the mean activation of each image's unit of ``layer``."""
    return Objective(maximise={"activation": Activation(layer)})


@dataclasses.dataclass(frozen=True)
class Ascent:
    """Normalised gradient ascent: ``iterations`` steps of ``step`` grey levels (0-255) over the
    gradient's RMS, a random shift of up to ``jitter`` px and a blur of ``blur`` px each step,
    pixels clipped to ``[0, 1]`` after each if ``clip``."""

    iterations: int
    step: float
    jitter: int = 0
    blur: float = 0.0
    clip: bool = False

    def settings(self, snapshots: tuple[int, ...] = ()) -> Settings:
        return Settings(self.iterations, NormalisedGradient(self.step / 255), jitter=Jitter(self.jitter),
                        blur=self.blur, clip=self.clip, snapshots=snapshots)


PRESETS = {
    "keras": Ascent(iterations=20, step=1.0),
    "long": Ascent(iterations=200, step=4.0, jitter=1, clip=True),
}
"""``keras``: conv_filter_visualization.py's loop (nothing clipped until display).  ``long``:
more and larger steps, for units that start far below zero before their ReLU (60 steps of 1
level left 3 of the first 32 conv5_1 filters of the HED VGG16 below zero), a one-pixel jitter
against single-pixel patterns, the image kept a valid one."""


def filter_settings(iterations: int = 20, step: float = 1 / 255, snapshots: tuple[int, ...] = ()) -> Settings:
    """Keras' loop: ``iterations`` steps of normalised gradient ascent, step 1 on the 0-255
    input, nothing clipped until display."""
    return Ascent(iterations, step * 255).settings(snapshots)


def grey_noise(key: jax.Array, count: int, size: int | tuple[int, int] = 128, channels: int = 3) -> jax.Array:
    """``count`` mid-grey images (``size`` square, or ``(H, W)``) with uniform noise of 10 grey
    levels.  (Keras put 128 +- 10 straight into VGG16's mean-subtracted input, which is near
    white; mid-grey is the neutral start on any network.)"""
    height, width = (size, size) if isinstance(size, int) else size
    return 0.5 + jax.random.uniform(key, (count, height, width, channels), minval=-10 / 255, maxval=10 / 255)


def ratio_to_natural(achieved: np.ndarray, natural: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Each image's ``achieved`` activation over its unit's mean on natural images, the unit's
    mean floored at the mean over every unit of the layer (``natural``, one per unit): a unit
    silent or nearly so on natural images must beat what a typical unit of its layer does
    there, instead of dividing by zero.  NaN where that reference is not > 0 (no unit of the
    layer is active on natural images on average)."""
    reference = np.maximum(natural[units], natural.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference > 0, achieved / reference, np.nan)


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
