"""Layers whose formulation is chosen per backend for speed.

XLA:CPU runs the convolutions jax's autodiff emits for a gradient (the transposed, swapped-layout
ones) through a naive kernel inside a loop body (JAX issue 12868): a scanned epoch ~20x slower
than a Python loop of steps, an L-BFGS ``while_loop`` over VGG16 25x slower.  ``Conv`` therefore
has three formulations, all with exactly the parameters of ``flax.linen.Conv`` (``kernel`` of
shape ``(kh, kw, in, out)`` and ``bias``), so weights move freely between them:

- ``im2col``: patches times a matmul (the CPU's with jax 0.10, whose XLA convolution is slow
  everywhere);
- ``xla``: ``lax.conv_general_dilated`` and jax's gradients (GPUs);
- ``xla_chunked``: XLA's convolution, its gradients written out as forward convolutions in the
  standard layouts, which XLA:CPU runs as fast inside a loop body as outside (jax 0.11's CPU); the
  kernel gradient summed over chunks of the batch (``KERNEL_GRAD_CHUNKS``: as one convolution
  with an output-sized window it runs on one thread), and vmapped over kernels (several models
  at once) one convolution per kernel instead of XLA's slower grouped one.

The formulation is one setting for every ``Conv``, not a field of each model:
``conv_impl()`` is the fast one for the default backend unless a ``use_conv_impl(...)``
block says otherwise (benchmarks timing a CPU beside a GPU, tests comparing the two).
It is read when a model is traced, so a function jitted before the switch keeps its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from typing import Callable, Iterator, Literal, Sequence, get_args

import flax.linen as nn
import jax
import jax.numpy as jnp

ConvImpl = Literal["im2col", "xla", "xla_chunked"]
CONV_IMPLS: tuple[ConvImpl, ...] = get_args(ConvImpl)
_CONV_IMPL: contextvars.ContextVar[ConvImpl | None] = contextvars.ContextVar("conv_impl", default=None)
XLA_CPU_CONV_FAST = tuple(int(v) for v in jax.__version__.split(".")[:2]) >= (0, 11)
"""jax 0.11's XLA:CPU runs a convolution ~4x faster than jax 0.10's."""


def conv_impl_for(platform: str) -> ConvImpl:
    """The fast formulation on a platform: on ``cpu`` ``xla_chunked`` with jax >= 0.11, else
    im2col; XLA's convolution elsewhere."""
    if platform != "cpu":
        return "xla"
    return "xla_chunked" if XLA_CPU_CONV_FAST else "im2col"


def conv_impl() -> ConvImpl:
    """The formulation ``Conv`` uses now: the innermost ``use_conv_impl``'s, else the fast
    one on the default backend."""
    return _CONV_IMPL.get() or conv_impl_for(jax.default_backend())


def pinned_conv_impl() -> ConvImpl | None:
    """The innermost ``use_conv_impl`` block's formulation; ``None`` outside any (or in a
    ``use_conv_impl(None)`` block), where it is the backend's default or an autotune's choice."""
    return _CONV_IMPL.get()


@contextlib.contextmanager
def use_conv_impl(impl: ConvImpl | None) -> Iterator[None]:
    """Within the block, ``Conv`` computes with ``impl`` (``None``: the backend's fast one)."""
    if impl is not None and impl not in CONV_IMPLS:
        raise ValueError(f"conv impl must be one of {CONV_IMPLS} or None, got {impl!r}")
    token = _CONV_IMPL.set(impl)
    try:
        yield
    finally:
        _CONV_IMPL.reset(token)


def _pad_same(x: jax.Array, kh: int, kw: int, strides: tuple[int, int] = (1, 1)) -> jax.Array:
    """TensorFlow's (and ``lax``'s) ``SAME`` padding: the output is ``ceil(size / stride)``."""
    pads = jax.lax.padtype_to_pads(x.shape[1:3], (kh, kw), strides, "SAME")
    return jnp.pad(x, ((0, 0), *pads, (0, 0)))


def window_slices(x: jax.Array, kh: int, kw: int, strides: tuple[int, int] = (1, 1)) -> list[jax.Array]:
    """The ``kh * kw`` strided views of NHWC ``x`` whose element ``[n, i, j]`` is the window
    ``(i, j)``'s pixel at one offset: the valid windows of a convolution or a pool."""
    (sh, sw), (height, width) = strides, x.shape[1:3]
    h, w = (height - kh) // sh + 1, (width - kw) // sw + 1
    return [x[:, i : i + (h - 1) * sh + 1 : sh, j : j + (w - 1) * sw + 1 : sw, :]
            for i in range(kh) for j in range(kw)]


def im2col(x: jax.Array, kh: int, kw: int, strides: tuple[int, int] = (1, 1)) -> jax.Array:
    """Patches of a valid ``kh x kw`` window: ``(N, H', W', kh*kw*C)``.

    The feature order matches a ``(kh, kw, C, out)`` kernel reshaped to ``(-1, out)``.
    """
    return jnp.concatenate(window_slices(x, kh, kw, strides), axis=-1)


def conv_valid(x: jax.Array, kernel: jax.Array, impl: str, strides: tuple[int, int] = (1, 1)) -> jax.Array:
    """A valid convolution of NHWC ``x`` with an HWIO ``kernel``."""
    if impl == "im2col":
        kh, kw, _, features = kernel.shape
        return im2col(x, kh, kw, strides) @ kernel.reshape(-1, features)
    if impl == "xla_chunked":
        return _xla_chunked_conv(x, kernel, tuple(strides))
    return _xla_conv(x, kernel, strides)


def _xla_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, strides, "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.cache
def _conv_per_kernel(strides: tuple[int, int]) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``_xla_conv`` at ``strides`` that, vmapped over kernels, runs one convolution per kernel."""
    @jax.custom_batching.custom_vmap
    def conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
        return _xla_conv(x, kernel, strides)

    @conv.def_vmap
    def conv_vmap(axis_size: int, in_batched: list[bool], x: jax.Array, kernel: jax.Array):
        x_batched, kernel_batched = in_batched
        if not kernel_batched:  # the mapped axis joins the images
            out = conv(x.reshape(-1, *x.shape[2:]), kernel)
            return out.reshape(axis_size, -1, *out.shape[1:]), True
        # Unrolled, so the models' convolutions run side by side: a loop over them (``lax.map``)
        # compiled four cifar_cnn in 11.5 s against 20.5 s, but trained them 1.4x slower.
        return jnp.stack([conv(x[i] if x_batched else x, kernel[i]) for i in range(axis_size)]), True

    return conv


KERNEL_GRAD_CHUNKS = 16
"""Batch chunks of ``xla_chunked``'s kernel gradient (fewer where the batch has no such divisor).
At batch 128 on the 2-core CPU (jax 0.11), a scanned ``cifar_cnn`` step took 158 / 134 / 133 /
141 ms with 4 / 8 / 16 / 32 chunks."""


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _xla_chunked_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
    """XLA's convolution, whose gradients are forward convolutions in the standard layouts, the
    kernel gradient summed over chunks of the batch."""
    return _conv_per_kernel(strides)(x, kernel)


def _chunked_fwd(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> tuple[jax.Array, tuple]:
    return _conv_per_kernel(strides)(x, kernel), (x, kernel)


def _chunked_bwd(strides: tuple[int, int], residuals: tuple, grad: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = residuals
    chunks = math.gcd(x.shape[0], KERNEL_GRAD_CHUNKS)
    # Contiguous chunks: XLA:CPU runs them faster than strided ones (images j, j + chunks, ...).
    kernel_grads = (_kernel_grad(xc, gc, kernel.shape, strides)
                    for xc, gc in zip(jnp.split(x, chunks), jnp.split(grad, chunks)))
    return _input_grad(grad, kernel, x.shape, strides), functools.reduce(jnp.add, kernel_grads)


def _dilate(x: jax.Array, strides: tuple[int, int], edges: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
    """``x`` (NHWC) with ``stride - 1`` zeros between its rows and columns and ``edges`` around."""
    (top, bottom), (left, right) = edges
    return jax.lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (top, bottom, strides[0] - 1),
                                                    (left, right, strides[1] - 1), (0, 0, 0)))


def _input_grad(grad: jax.Array, kernel: jax.Array, x_shape: tuple[int, ...], strides: tuple[int, int]) -> jax.Array:
    """The gradient of a valid convolution's input: the dilated, padded output gradient convolved
    with the flipped kernel.  Written out because jax's own transpose is a convolution in swapped
    layouts that XLA:CPU (jax 0.11) runs ~8x slower inside a loop body (a scan, L-BFGS' while)."""
    kh, kw = kernel.shape[:2]
    rows, cols = ((x_shape[1] - kh) % strides[0], (x_shape[2] - kw) % strides[1])  # inputs no window reached
    padded = _dilate(grad, strides, ((kh - 1, kh - 1 + rows), (kw - 1, kw - 1 + cols)))
    return _conv_per_kernel((1, 1))(padded, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))


def _kernel_grad(x: jax.Array, grad: jax.Array, kernel_shape: tuple[int, ...], strides: tuple[int, int]) -> jax.Array:
    """The gradient of a valid convolution's kernel: the inputs (channels as the batch) convolved
    with the output gradient (images as the features), in the standard layouts, for the same reason
    as ``_input_grad`` (there ~100x)."""
    kh, kw = kernel_shape[:2]
    window = _dilate(grad, strides, ((0, 0), (0, 0))).transpose(1, 2, 0, 3)
    return _conv_per_kernel((1, 1))(x.transpose(3, 1, 2, 0), window)[:, :kh, :kw].transpose(1, 2, 0, 3)


_xla_chunked_conv.defvjp(_chunked_fwd, _chunked_bwd)


class Conv(nn.Module):
    """A 2-D convolution, NHWC, ``padding`` of ``"SAME"`` or ``"VALID"``, ``strides`` as in
    ``flax.linen.Conv`` (an int or a pair)."""

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    padding: str = "SAME"
    strides: int | tuple[int, int] = 1
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        padding = self.padding.upper()
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME' or 'VALID', got {self.padding!r}")
        strides = (self.strides, self.strides) if isinstance(self.strides, int) else tuple(self.strides)
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
        if padding == "SAME":
            x = _pad_same(x, kh, kw, strides)
        y = conv_valid(x, kernel, conv_impl(), strides)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y


class Dropout(nn.Module):
    """Inverted dropout whose ``rate`` may be a traced array.

    ``flax.linen.Dropout`` branches on ``rate`` in Python, so it cannot be vmapped over
    rates; this one can, which lets K models with different dropout train in one call.
    It draws its mask exactly as ``flax.linen.Dropout`` does (``dropout`` rng stream);
    ``broadcast_dims=(1, 2)`` drops whole channels of NHWC maps (PyTorch's ``Dropout2d``).
    """

    rate: float | jax.Array
    deterministic: bool = False
    broadcast_dims: Sequence[int] = ()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.deterministic or (isinstance(self.rate, (int, float)) and self.rate == 0):
            return x
        keep = 1.0 - jnp.asarray(self.rate, jnp.float32)
        shape = tuple(1 if i in self.broadcast_dims else d for i, d in enumerate(x.shape))
        mask = jnp.broadcast_to(jax.random.bernoulli(self.make_rng("dropout"), keep, shape), x.shape)
        # max() keeps rate 1 finite (everything dropped) instead of 0/0.
        return jax.lax.select(mask, x / jnp.maximum(keep, 1e-12).astype(x.dtype), jnp.zeros_like(x))


def _blocks(x: jax.Array, size: int) -> jax.Array:
    """NHWC ``x`` as non-overlapping ``size x size`` blocks ``(N, H', size, W', size, C)``,
    the odd rows and columns dropped like Keras' ``valid`` pools."""
    n, h, w, c = x.shape
    h2, w2 = h // size, w // size
    return x[:, : h2 * size, : w2 * size, :].reshape(n, h2, size, w2, size, c)


def max_pool(x: jax.Array, size: int = 2, stride: int | None = None, padding: int = 0) -> jax.Array:
    """``size x size`` max-pool moving by ``stride`` (default ``size``: non-overlapping, flooring
    odd sizes like Keras) over ``x`` padded by ``padding`` pixels a side that never win
    (PyTorch's ``MaxPool2d(3, 2, padding=1)`` of ResNet).

    A reshape (or strided slices) + max instead of ``reduce_window``: its gradient is a
    cheap elementwise mask rather than XLA:CPU's slow ``select_and_scatter``.
    """
    stride = size if stride is None else stride
    if stride == size and padding == 0:
        return _blocks(x, size).max(axis=(2, 4))
    x = jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), constant_values=-jnp.inf)
    return functools.reduce(jnp.maximum, window_slices(x, size, size, (stride, stride)))


def avg_pool(x: jax.Array, size: int = 2) -> jax.Array:
    """Non-overlapping ``size x size`` average pool, flooring odd sizes like Keras'
    ``AveragePooling2D`` (DenseNet's transitions)."""
    return _blocks(x, size).mean(axis=(2, 4))


def upsample(x: jax.Array, size: int = 2) -> jax.Array:
    """Nearest-neighbour ``size x`` up-sampling of NHWC maps (Keras' ``UpSampling2D``).

    A broadcast + reshape: its gradient is a sum over the copies, not the slow
    ``lhs_dilation`` / transposed convolution of XLA:CPU (JAX issue 23783).
    """
    n, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, size, w, size, c))
    return x.reshape(n, h * size, w * size, c)


Features = dict[str, jax.Array]
"""A model's named intermediate activations (``conv1``, ``pool1``, ``fc1`` ...)."""


def batch_norm(train: bool, name: str, epsilon: float = 1e-5, momentum: float = 0.9) -> nn.BatchNorm:
    """BatchNorm as the reports' Keras and PyTorch code has it: batch statistics in training,
    running averages in inference, keeping ``momentum`` of themselves per batch (PyTorch's
    0.1 of each batch is 0.9 here; Keras' default 0.99); ``epsilon`` 1e-5 as PyTorch, 1e-3
    for Keras.

    The batch variance is the mean squared deviation from the mean, as Keras and PyTorch compute
    it, not flax's default ``E[x²] - E[x]²``, which cancels in float32 where a channel's mean is
    large against its spread: report 004's deep CNN, 3 epochs on ``shapes/hard`` with
    ``xla_chunked`` (jax 0.11's CPU formulation; measured with jax 0.10), reached 0.755 / 0.84 /
    0.92 test accuracy for seeds 3 / 4 / 0 with flax's formula and 0.885 / 0.958 / 0.982 with two
    passes (im2col: 0.93-0.97 either way)."""
    return nn.BatchNorm(use_running_average=not train, momentum=momentum, epsilon=epsilon, name=name,
                        use_fast_variance=False)
