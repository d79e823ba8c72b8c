"""Layers whose formulation is chosen per backend for speed.

XLA:CPU runs the backward pass of a convolution inside a ``lax.scan`` body through a
naive kernel (JAX issue 12868), which makes a scanned epoch ~20x slower than a Python
loop of steps.  ``Conv`` therefore computes the same convolution as an explicit
im2col + matmul on CPU and as ``lax.conv_general_dilated`` elsewhere.  All formulations have
exactly the parameters of ``flax.linen.Conv`` (``kernel`` of shape
``(kh, kw, in, out)`` and ``bias``), so weights move freely between them.

jax 0.11's XLA:CPU runs a convolution and its input gradient fast outside a loop body, but
computes the kernel gradient as one convolution with an output-sized window, on one thread
(a profile of ``mnist_cnn``'s step: the second conv's alone took a quarter of it).
``xla_chunked`` sums that gradient over chunks of the batch instead (``KERNEL_GRAD_CHUNKS``):
independent small convolutions that XLA runs side by side.

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
from typing import Iterator, Literal, Sequence, get_args

import flax.linen as nn
import jax
import jax.numpy as jnp

ConvImpl = Literal["im2col", "xla", "xla_chunked"]
CONV_IMPLS: tuple[ConvImpl, ...] = get_args(ConvImpl)
_CONV_IMPL: contextvars.ContextVar[ConvImpl | None] = contextvars.ContextVar("conv_impl", default=None)


def conv_impl_for(platform: str) -> ConvImpl:
    """The fast formulation on a platform: im2col on ``cpu``, XLA's convolution elsewhere."""
    return "im2col" if platform == "cpu" else "xla"


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
        return _conv_chunked_kernel_grad(x, kernel, tuple(strides))
    return _xla_conv(x, kernel, strides)


def _xla_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, strides, "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


KERNEL_GRAD_CHUNKS = 16
"""Batch chunks of ``xla_chunked``'s kernel gradient (fewer where the batch has no such divisor).
At batch 128 on the 2-core CPU, 8, 16 and 32 chunks trained ``mnist_cnn`` within noise of each
other, 16 ``cifar_cnn`` fastest; 4 were a third slower."""


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_chunked_kernel_grad(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
    """XLA's convolution, whose kernel gradient is summed over chunks of the batch."""
    return _xla_conv(x, kernel, strides)


def _chunked_fwd(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> tuple[jax.Array, tuple]:
    return _xla_conv(x, kernel, strides), (x, kernel)


def _chunked_bwd(strides: tuple[int, int], residuals: tuple, grad: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = residuals
    x_grad = jax.vjp(lambda x: _xla_conv(x, kernel, strides), x)[1](grad)[0]
    chunks = math.gcd(x.shape[0], KERNEL_GRAD_CHUNKS)
    # Contiguous chunks: XLA:CPU runs them faster than strided ones (images j, j + chunks, ...).
    kernel_grads = (jax.vjp(lambda k, xc=xc: _xla_conv(xc, k, strides), kernel)[1](gc)[0]
                    for xc, gc in zip(jnp.split(x, chunks), jnp.split(grad, chunks)))
    return x_grad, functools.reduce(jnp.add, kernel_grads)


_conv_chunked_kernel_grad.defvjp(_chunked_fwd, _chunked_bwd)


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


def batch_norm(train: bool, name: str, epsilon: float = 1e-5) -> nn.BatchNorm:
    """BatchNorm as the reports' Keras and PyTorch code has it: batch statistics in training,
    running averages (updated by 0.1 of each batch) in inference; ``epsilon`` 1e-5 as
    PyTorch, 1e-3 for Keras."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=epsilon, name=name)
