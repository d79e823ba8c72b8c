"""Which pixels a class score depends on: input gradients (saliency, Simonyan et al. 2014) and
Grad-CAM of a convolution (Selvaraju et al. 2017)."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcv.inspection.batching import check_batch_size, map_batches
from jaxcv.inspection.layers import Variables, as_labels, check_conv_layer, class_scores, forward
from jaxcv.train.losses import to_float


@functools.partial(jax.jit, static_argnames=("model", "batch_size"))
def _input_gradients(model: nn.Module, variables: Variables, images: jax.Array, labels: jax.Array | None,
                     batch_size: int) -> jax.Array:
    def batch(args: tuple[jax.Array, jax.Array | None]) -> jax.Array:
        x, y = args
        # Images are independent in inference mode, so the gradient of the batch's summed
        # scores is every image's own gradient, from one backward pass.
        return jax.grad(lambda x: class_scores(forward(model, variables, x)[0], y)[1].sum())(x)

    return map_batches(batch, (to_float(images), labels), batch_size)


def input_gradients(model: nn.Module, variables: Variables, images: jax.Array, labels: jax.Array | None = None, *,
                    batch_size: int = 256) -> jax.Array:
    """``(N, H, W, C)``: the gradient of each image's class logit (``labels``, default: the
    predicted class) with respect to its pixels, on the [0, 1] image scale."""
    check_batch_size(batch_size)
    images = jnp.asarray(images)
    return _input_gradients(model, variables, images, as_labels(labels, images), batch_size)


def saliency(model: nn.Module, variables: Variables, images: jax.Array, labels: jax.Array | None = None, *,
             batch_size: int = 256) -> jax.Array:
    """``(N, H, W)`` saliency maps: the largest ``|gradient|`` over each pixel's channels."""
    return jnp.abs(input_gradients(model, variables, images, labels, batch_size=batch_size)).max(-1)


def _with_delta(model: nn.Module, variables: Variables, images: jax.Array, layer: str, delta: jax.Array | float
                ) -> tuple[jax.Array, jax.Array]:
    """``model``'s outputs with ``delta`` added to the output of its submodule ``layer``, and
    that output.

    Linen gives no handle on an intermediate value, so to differentiate with respect to one we
    add a zero ``delta`` to it and differentiate with respect to ``delta``: the gradient there
    is the gradient at the intermediate.  ``nn.intercept_methods`` adds it from outside, around
    the submodule's ``__call__``, so every model works as written (``Module.perturb`` would need
    a call inside each model; ``capture_intermediates`` records values but cannot take a
    gradient at them).
    """
    path, seen = tuple(layer.split("/")), []

    def add_delta(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.module.path == path and context.method_name == "__call__":
            seen.append(out)
            return out + delta
        return out

    with nn.intercept_methods(add_delta):
        outputs = forward(model, variables, images)[0]
    return outputs, seen[-1]


@functools.partial(jax.jit, static_argnames=("model", "layer", "batch_size"))
def _grad_cam(model: nn.Module, variables: Variables, images: jax.Array, labels: jax.Array | None, layer: str,
              batch_size: int) -> jax.Array:
    def batch(args: tuple[jax.Array, jax.Array | None]) -> jax.Array:
        x, y = args
        shape = jax.eval_shape(lambda x: _with_delta(model, variables, x, layer, 0.0)[1], x)

        def score(delta: jax.Array) -> tuple[jax.Array, jax.Array]:
            logits, maps = _with_delta(model, variables, x, layer, delta)
            return class_scores(logits, y)[1].sum(), maps

        grads, maps = jax.grad(score, has_aux=True)(jnp.zeros(shape.shape, shape.dtype))
        weights = grads.mean(axis=(1, 2))  # one weight per channel: its gradient, spatially averaged
        cam = jax.nn.relu(jnp.einsum("nhwc,nc->nhw", maps, weights))
        if cam.shape[1:] != x.shape[1:3]:
            cam = jax.image.resize(cam, (len(x), *x.shape[1:3]), "bilinear")
        return cam

    return map_batches(batch, (to_float(images), labels), batch_size)


def grad_cam(model: nn.Module, variables: Variables, images: jax.Array, labels: jax.Array | None = None, *,
             layer: str, batch_size: int = 256) -> jax.Array:
    """``(N, H, W)`` Grad-CAM maps of conv ``layer``: its output channels, each weighted by the
    spatial mean of the class logit's gradient there, summed and rectified, then resized
    (bilinear) to the image.  The maps are taken at the output of the ``layer`` submodule,
    i.e. before the activation or BatchNorm that follows it in jaxcv's models.  ``labels``
    are the classes to explain (default: the predicted ones)."""
    check_conv_layer(variables, layer)
    check_batch_size(batch_size)
    images = jnp.asarray(images)
    return _grad_cam(model, variables, images, as_labels(labels, images), layer, batch_size)
