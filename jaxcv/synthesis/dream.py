"""Deep dream (Mordvintsev et al. 2015) as Keras' ``deep_dream.py`` ran it in 2016-17 on VGG16
(report 000): maximise the L2 norm of some layers' activations, minus continuity (total
variation) and "dream" (image L2) terms, 5 rounds of L-BFGS with 7 evaluations, a random
"jitter" noise per round; and the loop of the original deep dream: normalised gradient steps
with a random shift, at several scales (octaves), the detail lost by shrinking put back at each
larger one.

Keras' weights assume the ImageNet VGG16's feature sizes on its "caffe" input (0-255), as does
``jitter`` (grey levels); ``calibrated`` makes the weights mean the same on any network.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from jaxcv.errors import UsageError
from jaxcv.synthesis.engine import Result, Settings, optimise, score
from jaxcv.synthesis.network import Network
from jaxcv.synthesis.objectives import LayerL2, Objective
from jaxcv.synthesis.optimisers import LBFGS, NormalisedGradient
from jaxcv.synthesis.regularisers import ImageL2, TotalVariation
from jaxcv.synthesis.transforms import Jitter


@dataclasses.dataclass(frozen=True)
class Dream:
    """Layer weights of the dream score, the continuity and dream-L2 weights (per pixel value),
    and the per-round noise amplitude in 0-255 grey levels."""

    layers: Mapping[str, float]
    continuity: float
    dream_l2: float
    jitter: float


PRESETS = {
    "dreamy": Dream({"conv5_1": 0.05, "conv5_2": 0.02}, continuity=0.1, dream_l2=0.02, jitter=0),
    "bad_trip": Dream({"conv4_1": 0.05, "conv4_2": 0.01, "conv4_3": 0.01}, continuity=0.1, dream_l2=0.8,
                      jitter=5),
}


def dream_objective(dream: Dream, image_shape: tuple[int, int, int]) -> Objective:
    """Keras' loss for an image of ``image_shape``: the layers' ``LayerL2`` maximised, total
    variation and image L2 minimised, both over the image's number of values."""
    if not dream.layers:
        raise UsageError("deep dream: no layers to dream with; name at least one")
    return Objective(
        maximise={f"dream_{layer}": LayerL2(layer) for layer in dream.layers},
        minimise={"continuity": TotalVariation(1.25), "dream_l2": ImageL2()},
        weights=_weights(dream, float(math.prod(image_shape))))


def _weights(dream: Dream, values: float = 1.0) -> dict[str, float]:
    """Each term's weight as ``dream`` gives it, continuity and dream L2 over ``values``."""
    return {**{f"dream_{layer}": weight for layer, weight in dream.layers.items()},
            "continuity": dream.continuity / values, "dream_l2": dream.dream_l2 / values}


def dream_settings(dream: Dream, iterations: int = 5, evaluations: int = 7) -> Settings:
    """Keras' loop: ``iterations`` rounds of L-BFGS with ``evaluations`` evaluations, uniform
    noise of ``dream.jitter`` grey levels added for each round, no clipping."""
    return Settings(iterations=iterations, optimiser=LBFGS(evaluations=evaluations), noise=dream.jitter / 255,
                    clip=False)


def calibrated(network: Network, dream: Dream, photograph: jax.Array) -> Callable[[tuple[int, int, int]], Objective]:
    """``dream``'s objective at any octave's shape, each term's weight divided by that term's value
    on ``photograph`` (``(H, W, C)``) resized to the shape: on the photograph every weighted term
    equals its weight, whatever the network's feature sizes.  Keras' weights were set for the
    ImageNet VGG16; on the offline HED VGG16 its continuity term is hundreds of times the layer-5
    score, and the picture is flattened instead of dreamed.

    A weighted term that is 0 on the photograph (a flat image has no total variation) is a
    ``UsageError``, raised here for the photograph's own size.  Each shape's objective is
    computed once (the octave loop and the study's final scoring ask again for the full size)."""
    raw = _weights(dream)

    @functools.cache
    def objective_for(shape: tuple[int, int, int]) -> Objective:
        objective = dream_objective(dream, shape)
        values = score(network, objective, jax.image.resize(photograph, shape, "cubic")[None])
        if zero := [name for name, w in raw.items() if w and not values[name][0] > 0]:
            raise UsageError(f"deep dream: {', '.join(zero)} is 0 on the photograph at {shape[0]}x{shape[1]}, "
                             "so no weight can be relative to it; choose other layers or another image")
        return dataclasses.replace(objective, weights={name: w / float(values[name][0]) if w else 0.0
                                                        for name, w in raw.items()})

    objective_for(tuple(photograph.shape))
    return objective_for


@dataclasses.dataclass(frozen=True)
class Loop:
    """How each octave is dreamed.  With ``evaluations``: Keras' ``iterations`` rounds of L-BFGS
    of that many evaluations, nothing clipped.  Without: the original deep dream's
    ``iterations`` normalised gradient steps of ``step`` grey levels, a random shift of up to
    ``shift`` px each, pixels clipped to the valid range.  ``calibrate``: weights relative to
    the photograph's own values (``calibrated``)."""

    iterations: int
    octaves: int
    evaluations: int | None = None
    step: float = 1.5
    shift: int = 32
    calibrate: bool = False

    @property
    def per_octave(self) -> str:
        """What one octave runs, in words."""
        if self.evaluations is not None:
            return f"{self.iterations} rounds of L-BFGS ({self.evaluations} evaluations)"
        return (f"{self.iterations} normalised gradient steps of {self.step:g} grey levels (a random shift of up to "
                f"{self.shift} px each, pixels clipped to the valid range)")

    def __str__(self) -> str:
        weights = "weights relative to the photograph" if self.calibrate else "Keras' weights"
        return f"{self.per_octave} at {self.octaves} octave(s), {weights}"

    def settings(self, dream: Dream) -> Settings:
        """The engine's settings for one octave of ``dream``."""
        if self.evaluations is not None:
            return dream_settings(dream, self.iterations, self.evaluations)
        return Settings(iterations=self.iterations, optimiser=NormalisedGradient(self.step / 255),
                        jitter=Jitter(self.shift), noise=dream.jitter / 255, clip=True)


LOOPS = {
    "ascent": Loop(iterations=10, octaves=4, calibrate=True),
    "keras": Loop(iterations=5, octaves=1, evaluations=7),
}
"""``ascent``: the original deep dream's loop (10 steps of 1.5 levels, a shift of up to 32 px,
4 octaves 1.4 apart) on the calibrated objective; it dreams on VGG16 weights where Keras' does
not.  ``keras``: ``deep_dream.py``'s 5 rounds of L-BFGS with 7 evaluations at one scale, its
weights as they are."""


def octave_shapes(shape: tuple[int, int], octaves: int, scale: float) -> list[tuple[int, int]]:
    """``octaves`` image sizes, smallest first, each ``scale`` times the one before, the last ``shape``."""
    if octaves < 1:
        raise UsageError(f"octaves is {octaves}; it must be >= 1")
    if not 1 <= scale < math.inf:  # NaN too
        raise UsageError(f"octave scale is {scale}; it must be finite and >= 1")
    return [(max(1, round(shape[0] / scale**i)), max(1, round(shape[1] / scale**i)))
            for i in reversed(range(octaves))]


def optimise_octaves(network: Network, objective_for: Callable[[tuple[int, int, int]], Objective],
                     image: jax.Array, settings: Settings, octaves: int = 3, scale: float = 1.4,
                     key: jax.Array | None = None, progress: str | None = None) -> list[Result]:
    """Dream ``image`` (``(H, W, C)``) at ``octaves`` scales, smallest first: at each larger one
    the dream so far is enlarged and the detail that shrinking took from the original is added
    back.  ``objective_for(shape)`` gives the objective at each scale.  One ``Result`` per
    octave (each its own compiled loop); the last one's ``final`` is the dream.  ``progress``:
    the title of a progress bar per octave."""
    image = jnp.asarray(image, jnp.float32)
    key = jax.random.key(0) if key is None else key
    results: list[Result] = []
    previous = None
    for octave, shape in enumerate(octave_shapes(image.shape[:2], octaves, scale), start=1):
        size = (*shape, image.shape[-1])
        base = jax.image.resize(image, size, "cubic")
        if previous is None:
            x = base
        else:
            lost = base - jax.image.resize(jax.image.resize(image, previous, "cubic"), size, "cubic")
            x = jax.image.resize(results[-1].final[0], size, "cubic") + lost
        key, k_octave = jax.random.split(key)
        title = None if progress is None else f"{progress} (octave {octave}/{octaves}, {shape[0]}x{shape[1]})"
        results.append(optimise(network, objective_for(size), x, settings, key=k_octave, progress=title))
        previous = size
    return results
