"""Keras' neural style example (``examples/neural_style_transfer.py``, 2016-17) on Keras 3's
TensorFlow backend, timed per iteration.

Run by ``benchmarks/style.py --peers keras-tf`` in its own process: ``python keras_style.py
DATA.npz ITERATIONS`` prints one JSON record.  As the example: ``keras.applications.VGG16``
without its top (here with the weights in DATA.npz), content ``block4_conv2`` (weight 0.025),
style Grams of ``block1_conv1`` … ``block5_conv1`` over ``4 * 3^2 * (H*W)^2`` (weight 1, shared by
the layers), total variation ``sum((dy^2 + dx^2) ** 1.25)`` (weight 1), on the caffe-space image;
the loss and its gradient from one compiled function; one iteration is one
``scipy.optimize.fmin_l_bfgs_b(maxfun=20)`` call.  One difference: the example ran VGG16 on
the content, style and generated images at every evaluation; here the content features and
style Grams are computed once, as jaxcv and PyTorch's tutorial do, so all three do the same work.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from scipy.optimize import fmin_l_bfgs_b

from style_peer import parse, report

STYLE_LAYERS = [f"block{b}_conv1" for b in range(1, 6)]
CONTENT_LAYER = "block4_conv2"


def main() -> None:
    data, iterations = parse(__doc__)
    height, width = data["content"].shape[:2]

    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(height, width, 3))
    for layer in vgg.layers:
        if layer.name.startswith("block") and "conv" in layer.name:
            layer.set_weights([data[f"{layer.name}/kernel"], data[f"{layer.name}/bias"]])
    names = [CONTENT_LAYER, *STYLE_LAYERS]
    features = keras.Model(vgg.input, [vgg.get_layer(name).output for name in names])

    def gram(x):
        flat = tf.reshape(x, (-1, x.shape[-1]))
        return tf.matmul(flat, flat, transpose_a=True)

    targets = features(np.stack([data["content"], data["style"]]))
    content_target = targets[0][0]
    style_targets = [gram(t[1]) for t in targets[1:]]
    size = height * width

    @tf.function
    def loss_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outs = features(x)
            loss = 0.025 * tf.reduce_sum(tf.square(outs[0][0] - content_target))
            for out, target in zip(outs[1:], style_targets):
                style = tf.reduce_sum(tf.square(gram(out[0]) - target)) / (4.0 * 3**2 * size**2)
                loss += (1.0 / len(STYLE_LAYERS)) * style
            image = x[0]
            dy = tf.square(image[:-1, :-1] - image[1:, :-1])
            dx = tf.square(image[:-1, :-1] - image[:-1, 1:])
            loss += 1.0 * tf.reduce_sum(tf.pow(dy + dx, 1.25))
        return loss, tape.gradient(loss, x)

    evaluations = 0

    def value_and_grad(flat):
        nonlocal evaluations
        evaluations += 1
        loss, grad = loss_and_grad(tf.constant(flat.reshape(1, height, width, 3), tf.float32))
        return float(loss), grad.numpy().ravel().astype(np.float64)

    x = data["start"].astype(np.float64).ravel()
    initial_loss = value_and_grad(x)[0]
    seconds, spent, losses = [], [], []
    for _ in range(iterations + 1):
        evaluations = 0
        start = time.perf_counter()
        x, loss, _ = fmin_l_bfgs_b(value_and_grad, x, maxfun=20)
        seconds.append(time.perf_counter() - start)
        spent.append(evaluations)
        losses.append(float(loss))
    report("keras-tf", seconds, spent, initial_loss, losses)


if __name__ == "__main__":
    main()
