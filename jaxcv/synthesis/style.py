"""Neural style transfer (Gatys et al. 2015) as Keras' ``neural_style_transfer.py`` ran it in
2016-17 on VGG16 (reports 001): content ``conv4_2``, style Grams of ``conv1_1`` … ``conv5_1``,
weights content 0.025 / style 1 / total variation 1, L-BFGS with 20 evaluations per iteration
from random noise, nothing clipped until the image is shown.

The weights assume VGG16's "caffe" input (0-255, mean-subtracted), which Keras' loss was tuned on.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxcv.errors import UsageError
from jaxcv.synthesis.engine import Settings
from jaxcv.synthesis.network import Network
from jaxcv.synthesis.objectives import Content, Objective, Style, gram_matrix
from jaxcv.synthesis.optimisers import LBFGS
from jaxcv.synthesis.regularisers import TotalVariation

CONTENT_LAYER = "conv4_2"
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def style_objective(network: Network, content: np.ndarray, style: np.ndarray, *,
                    content_layer: str = CONTENT_LAYER, style_layers: Sequence[str] = STYLE_LAYERS,
                    content_weight: float = 0.025, style_weight: float = 1.0,
                    tv_weight: float = 1.0) -> Objective:
    """Keras' loss for ``content`` and ``style`` (``(H, W, 3)`` in ``[0, 1]``, the same shape):
    ``content_weight * content + style_weight * style + tv_weight * tv``, where ``style`` is the
    mean over ``style_layers`` of ``||G - G_style||^2 / (4 * 3^2 * (H*W)^2)`` (Keras' normaliser:
    3 channels and the image's pixel count whatever the layer)."""
    if content.shape != style.shape:
        raise UsageError(f"style image {style.shape[:2]} and content image {content.shape[:2]} differ in "
                         "size; load the style image at the content's shape")
    if not style_layers:
        raise UsageError("no style layers; name at least one")
    style_layers = tuple(style_layers)
    network.check((content_layer, *style_layers), content.shape)
    features = jax.jit(lambda net, x: net.features(net.preprocess(x)))(network, jnp.stack([content, style]))
    height, width = content.shape[:2]
    per_layer = 1.0 / (len(style_layers) * 4.0 * 3**2 * float(height * width) ** 2)
    return Objective(
        minimise={"content": Content(content_layer, features[content_layer][0]),
                  "style": Style({layer: gram_matrix(features[layer][1]) for layer in style_layers},
                                 {layer: jnp.float32(per_layer) for layer in style_layers}),
                  "tv": TotalVariation(1.25)},
        weights={"content": content_weight, "style": style_weight, "tv": tv_weight})


def style_settings(iterations: int = 10, evaluations: int = 20, snapshots: tuple[int, ...] = ()) -> Settings:
    """Keras' loop: ``iterations`` L-BFGS calls of ``evaluations`` evaluations, no clipping."""
    return Settings(iterations=iterations, optimiser=LBFGS(evaluations=evaluations), clip=False,
                    snapshots=snapshots)


def noise_image(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """Uniform noise in ``[0, 1]``: on the caffe input, Keras' ``uniform(0, 255) - 128`` shifted
    by 128 minus each channel's mean (4 to 24 grey levels)."""
    return jax.random.uniform(key, (*shape, 3))


@dataclasses.dataclass(frozen=True)
class Preset:
    """The starting image (``noise`` or ``content``) and the content and total-variation weights,
    set for an image of ``pixels`` pixels and scaled to the image's (``None``: used as they are)."""

    start: str
    content_weight: float
    tv_weight: float
    pixels: int | None = None

    def for_image(self, shape: tuple[int, ...]) -> Preset:
        """The preset with its weights for an image of ``shape`` and ``pixels`` cleared."""
        scale = 1.0 if self.pixels is None else self.pixels / (shape[0] * shape[1])
        return dataclasses.replace(self, content_weight=self.content_weight * scale, tv_weight=self.tv_weight * scale,
                                   pixels=None)


PRESETS = {"keras": Preset(start="noise", content_weight=0.025, tv_weight=1.0),
           "content": Preset(start="content", content_weight=2.0, tv_weight=0.1, pixels=96 * 96)}
"""``keras``: the example's start and weights.  ``content``: from the content image, with content
and total-variation weights chosen at 96x96 on the HED VGG16 (where Keras' content term is some
300 times smaller than its style term, so the content never forms from noise) and scaled with
the pixel count, as both terms grow with it and the style term does not."""
