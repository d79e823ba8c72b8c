"""Random transforms applied to the image before the network sees it, drawn anew each iteration,
so that the optimised pattern must survive small shifts, zooms and turns (Mordvintsev et al.'s
"transformation robustness") instead of exploiting single pixels."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxcv.errors import UsageError


@dataclasses.dataclass(frozen=True)
class Jitter:
    """A random shift of up to ``shift`` pixels each way (a cyclic roll, exact), then, if asked,
    a zoom by a factor drawn from ``scale`` (``(low, high)``) and a turn by up to ``rotate``
    degrees each way about the centre (bilinear, edges reflected).  The default is no transform."""

    shift: int = 0
    scale: tuple[float, float] = (1.0, 1.0)
    rotate: float = 0.0

    def __post_init__(self) -> None:
        low, high = self.scale
        if self.shift < 0 or not 0 <= self.rotate < math.inf:  # NaN too
            raise UsageError(f"jitter: shift {self.shift} and rotate {self.rotate} must be finite and >= 0")
        if not 0 < low <= high < math.inf:
            raise UsageError(f"jitter: scale {self.scale} must be (low, high) with 0 < low <= high")

    @property
    def identity(self) -> bool:
        return self.shift == 0 and self.scale == (1.0, 1.0) and self.rotate == 0

    def __call__(self, key: jax.Array, image: jax.Array) -> jax.Array:
        """The ``(H, W, C)`` image transformed by a draw from ``key``; same shape."""
        if self.identity:
            return image
        k_shift, k_scale, k_rotate = jax.random.split(key, 3)
        if self.shift:
            dy, dx = jax.random.randint(k_shift, (2,), -self.shift, self.shift + 1)
            image = jnp.roll(image, (dy, dx), axis=(0, 1))
        if self.scale != (1.0, 1.0) or self.rotate:
            zoom = jax.random.uniform(k_scale, (), minval=self.scale[0], maxval=self.scale[1])
            angle = jax.random.uniform(k_rotate, (), minval=-self.rotate, maxval=self.rotate) * (math.pi / 180)
            image = _zoom_and_turn(image, zoom, angle)
        return image


def _zoom_and_turn(image: jax.Array, zoom: jax.Array, angle: jax.Array) -> jax.Array:
    """``image`` magnified by ``zoom`` and turned by ``angle`` radians about its centre."""
    h, w, c = image.shape
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - (h - 1) / 2,
                          jnp.arange(w, dtype=jnp.float32) - (w - 1) / 2, indexing="ij")
    cos, sin = jnp.cos(angle) / zoom, jnp.sin(angle) / zoom
    src_y = cos * ys - sin * xs + (h - 1) / 2
    src_x = sin * ys + cos * xs + (w - 1) / 2

    def channel(plane: jax.Array) -> jax.Array:
        return jax.scipy.ndimage.map_coordinates(plane, [src_y, src_x], order=1, mode="reflect")

    return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)
