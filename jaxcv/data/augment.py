"""On-device data augmentation: Keras-``ImageDataGenerator``-like random transforms as pure
functions of a PRNG key, to run inside a compiled training step.

``Augment(...)`` holds the ranges (a frozen, hashable dataclass, so it can be a static argument
of ``jax.jit``); ``Augment(...)(rng, images)`` draws independent parameters per example, composes
rotation, shift, shear and zoom into one affine matrix per image, resamples each image once
(bilinear), then flips and adds noise.  The pieces are public: ``affine_matrix``, ``warp``,
``flip`` and ``add_noise``.

Conventions follow Keras' ``apply_affine_transform`` (checked against Keras 3's legacy
``ImageDataGenerator`` in the tests): the matrix maps output pixel coordinates ``(row, col)``,
taken about the image centre ``((H-1)/2, (W-1)/2)``, to the input coordinates sampled; it is
``rotation @ shift @ shear @ zoom``.  On the screen (rows down, columns right) a positive rotation
turns the content counter-clockwise, a positive shift moves it up / left, a positive shear moves
the content above the centre to the left (and below it to the right), and a zoom factor below 1
magnifies.  Where jaxcv differs from Keras:

- Keras draws its height shift from ``height_shift_range`` scaled by the height but applies it
  along the columns (and the width shift along the rows, with the centre's coordinates swapped):
  its x/y mix-up shows on non-square images only.  jaxcv shifts rows by ``height_shift`` × H and
  columns by ``width_shift`` × W.
- Shifts are fractions of the size only (Keras also takes integer pixel ranges and lists).
- ``noise`` (additive Gaussian, then clipped to [0, 1]) is not in ``ImageDataGenerator``.
- Fill modes are ``nearest`` (Keras' default), ``reflect`` and ``constant`` (with ``cval``), as
  scipy's ``ndimage`` modes of the same names; Keras' ``wrap`` is not offered.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

FILL_MODES = ("nearest", "reflect", "constant")


def affine_matrix(rotation: jax.Array | float = 0.0, shift: tuple[jax.Array | float, jax.Array | float] = (0.0, 0.0),
                  shear: jax.Array | float = 0.0,
                  zoom: tuple[jax.Array | float, jax.Array | float] = (1.0, 1.0)) -> jax.Array:
    """The 3×3 map from output to input pixel coordinates ``(row, col, 1)`` about the image centre.

    ``rotation`` and ``shear`` are in degrees, ``shift`` is ``(rows, cols)`` in pixels and
    ``zoom`` is ``(rows, cols)`` factors; any of them may be traced.  Composed as Keras does:
    ``rotation @ shift @ shear @ zoom``.
    """
    theta, phi = jnp.deg2rad(rotation), jnp.deg2rad(shear)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    one, zero = jnp.ones_like(theta), jnp.zeros_like(theta)
    rotate = jnp.array([[cos, sin, zero], [-sin, cos, zero], [zero, zero, one]])
    translate = jnp.array([[one, zero, shift[0] * one], [zero, one, shift[1] * one], [zero, zero, one]])
    skew = jnp.array([[jnp.cos(phi), zero, zero], [-jnp.sin(phi), one, zero], [zero, zero, one]])
    scale = jnp.array([[zoom[0] * one, zero, zero], [zero, zoom[1] * one, zero], [zero, zero, one]])
    return rotate @ translate @ skew @ scale


def _fill_indices(index: jax.Array, size: int, fill_mode: str) -> jax.Array:
    """Integer sample positions mapped into ``[0, size)`` as scipy's ``nearest`` / ``reflect``."""
    if fill_mode == "reflect":  # half-sample symmetric: ... b a | a b c d | d c ...
        index = jnp.mod(index, 2 * size)
        return jnp.where(index >= size, 2 * size - 1 - index, index)
    return jnp.clip(index, 0, size - 1)


def warp(image: jax.Array, matrix: jax.Array, fill_mode: str = "nearest", cval: float = 0.0) -> jax.Array:
    """Resample one ``(H, W, C)`` image bilinearly through ``matrix`` (see ``affine_matrix``).

    Output pixel ``p`` takes the input at ``matrix @ (p - centre) + centre``.  Points outside the
    image are filled as scipy's ``ndimage`` mode ``fill_mode`` fills them (``constant``: ``cval``
    for any point outside ``[0, H-1] × [0, W-1]``).  The identity matrix returns ``image`` exactly.
    """
    if fill_mode not in FILL_MODES:
        raise ValueError(f"fill_mode must be one of {', '.join(FILL_MODES)}, got {fill_mode!r}")
    height, width = image.shape[:2]
    centre = jnp.array([(height - 1) / 2, (width - 1) / 2], jnp.float32)
    rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32),
                              indexing="ij")
    grid = jnp.stack([rows.ravel(), cols.ravel()]) - centre[:, None]
    source = matrix[:2, :2].astype(jnp.float32) @ grid + matrix[:2, 2:].astype(jnp.float32) + centre[:, None]
    row, col = source[0], source[1]
    row0, col0 = jnp.floor(row), jnp.floor(col)
    row_frac, col_frac = (row - row0)[:, None], (col - col0)[:, None]
    row0, col0 = row0.astype(jnp.int32), col0.astype(jnp.int32)
    r0, r1 = _fill_indices(row0, height, fill_mode), _fill_indices(row0 + 1, height, fill_mode)
    c0, c1 = _fill_indices(col0, width, fill_mode), _fill_indices(col0 + 1, width, fill_mode)
    pixels = image.reshape(height * width, -1)
    top = pixels[r0 * width + c0] * (1 - col_frac) + pixels[r0 * width + c1] * col_frac
    bottom = pixels[r1 * width + c0] * (1 - col_frac) + pixels[r1 * width + c1] * col_frac
    out = top * (1 - row_frac) + bottom * row_frac
    if fill_mode == "constant":
        inside = (row >= 0) & (row <= height - 1) & (col >= 0) & (col <= width - 1)
        out = jnp.where(inside[:, None], out, jnp.asarray(cval, out.dtype))
    return out.reshape(image.shape).astype(image.dtype)


def flip(image: jax.Array, horizontal: jax.Array | bool, vertical: jax.Array | bool) -> jax.Array:
    """One ``(H, W, C)`` image mirrored left-right where ``horizontal``, upside down where ``vertical``."""
    image = jnp.where(horizontal, image[:, ::-1], image)
    return jnp.where(vertical, image[::-1], image)


def add_noise(rng: jax.Array, images: jax.Array, std: float) -> jax.Array:
    """``images`` plus Gaussian noise of standard deviation ``std``, clipped to [0, 1]."""
    noise = std * jax.random.normal(rng, images.shape, images.dtype)
    return jnp.clip(images + noise, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Augment:
    """Random per-example augmentation with ``ImageDataGenerator``'s ranges.

    Each example independently draws a rotation uniform in ``±rotation`` degrees, shifts uniform
    in ``±height_shift`` × H rows and ``±width_shift`` × W columns, a shear angle uniform in
    ``±shear`` degrees (Keras' ``shear_range``), zoom factors for rows and columns drawn
    independently, each uniform in ``[1 - zoom, 1 + zoom]`` (Keras' ``zoom_range``; above 1 zooms
    out), a left-right flip with probability 1/2 if ``horizontal_flip`` and an upside-down flip
    with probability 1/2 if ``vertical_flip``, then Gaussian noise of std ``noise`` (clipped to
    [0, 1]).  Call it as ``augment(rng, images)`` on a float ``(N, H, W, C)`` batch in [0, 1].
    """

    rotation: float = 0.0
    width_shift: float = 0.0
    height_shift: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    horizontal_flip: bool = False
    vertical_flip: bool = False
    noise: float = 0.0
    fill_mode: str = "nearest"
    cval: float = 0.0

    def __post_init__(self):
        for name in ("rotation", "width_shift", "height_shift", "shear", "zoom", "noise"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("width_shift", "height_shift"):
            if getattr(self, name) >= 1:
                raise ValueError(f"{name} is a fraction of the image size and must be < 1, got {getattr(self, name)}")
        if self.zoom >= 1:
            raise ValueError(f"zoom must be < 1 (factors are drawn from [1 - zoom, 1 + zoom]), got {self.zoom}")
        if self.fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {', '.join(FILL_MODES)}, got {self.fill_mode!r}")

    @property
    def warps(self) -> bool:
        """Whether any geometric range (rotation, shift, shear, zoom) is non-zero."""
        return any((self.rotation, self.width_shift, self.height_shift, self.shear, self.zoom))

    @property
    def is_identity(self) -> bool:
        """Whether every range is zero: the call then returns its input untouched."""
        return not (self.warps or self.horizontal_flip or self.vertical_flip or self.noise)

    def matrices(self, uniforms: jax.Array, height: int, width: int) -> jax.Array:
        """``affine_matrix`` per row of ``uniforms`` ``(n, 6)`` in [-1, 1] (rotation, row shift, column
        shift, shear, row zoom, column zoom, each scaled to its range) for ``height × width`` images."""
        limits = jnp.array([self.rotation, self.height_shift * height, self.width_shift * width, self.shear,
                            self.zoom, self.zoom], jnp.float32)
        p = uniforms * limits
        return jax.vmap(lambda q: affine_matrix(q[0], (q[1], q[2]), q[3], (1.0 + q[4], 1.0 + q[5])))(p)

    def __call__(self, rng: jax.Array, images: jax.Array) -> jax.Array:
        if images.ndim != 4 or not jnp.issubdtype(images.dtype, jnp.floating):
            raise ValueError(f"expected a float batch (N, H, W, C), got {images.dtype} {images.shape}")
        if self.is_identity:
            return images
        n, height, width = images.shape[:3]
        params_rng, noise_rng = jax.random.split(rng)
        # one draw for every parameter (each random call is a threefry kernel to compile and run)
        uniforms = jax.random.uniform(params_rng, (n, 8), jnp.float32, -1.0, 1.0)
        flips = (uniforms[:, 6:] < 0) & jnp.array([self.horizontal_flip, self.vertical_flip])
        if self.warps:  # flipping the warped image = warping through a mirrored grid: M @ diag(±1, ±1, 1)
            signs = jnp.where(flips, -1.0, 1.0)
            mirror = jnp.stack([signs[:, 1], signs[:, 0], jnp.ones(n)], axis=1)
            matrices = self.matrices(uniforms[:, :6], height, width) * mirror[:, None, :]
            images = jax.vmap(lambda im, m: warp(im, m, self.fill_mode, self.cval))(images, matrices)
        elif self.horizontal_flip or self.vertical_flip:
            images = jax.vmap(flip)(images, flips[:, 0], flips[:, 1])
        if self.noise:
            images = add_noise(noise_rng, images, self.noise)
        return images
