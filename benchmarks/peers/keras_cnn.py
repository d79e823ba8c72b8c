"""jaxcv's ``mnist_cnn`` and ``cifar_cnn`` (± BatchNorm) in Keras 3, timed per epoch of ``model.fit``.

Run by ``benchmarks/epoch_times.py --peers keras`` in its own process, with ``KERAS_BACKEND``
(``jax`` or ``tensorflow``) set before Keras is imported:
``python keras_cnn.py DATA.npz MODEL BATCH REPEATS`` prints one JSON record.  The layers,
parameter counts, optimizer (Adam 1e-3) and batch size are jaxcv's; images are scaled to
[0, 1] floats once, before ``fit`` (Keras' usual input), and shuffled each epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import keras
import numpy as np
from keras import layers


def mnist_cnn() -> list[layers.Layer]:
    return [layers.Conv2D(32, 3, activation="relu"), layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(2), layers.Dropout(0.25),
            layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5), layers.Dense(10)]


def cifar_cnn(batchnorm: bool) -> list[layers.Layer]:
    def conv(f: int, padding: str) -> list[layers.Layer]:
        if not batchnorm:
            return [layers.Conv2D(f, 3, padding=padding, activation="relu")]
        return [layers.Conv2D(f, 3, padding=padding, use_bias=False), layers.BatchNormalization(momentum=0.9),
                layers.Activation("relu")]

    dense = ([layers.Dense(512, use_bias=False), layers.BatchNormalization(momentum=0.9), layers.Activation("relu")]
             if batchnorm else [layers.Dense(512, activation="relu")])
    return [*conv(32, "same"), *conv(32, "valid"), layers.MaxPooling2D(2), layers.Dropout(0.25),
            *conv(64, "same"), *conv(64, "valid"), layers.MaxPooling2D(2), layers.Dropout(0.25),
            layers.Flatten(), *dense, layers.Dropout(0.5), layers.Dense(10)]


MODELS = {"mnist_cnn": mnist_cnn, "cifar_cnn": lambda: cifar_cnn(False), "cifar_cnn_bn": lambda: cifar_cnn(True)}


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of every epoch of ``fit``."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("data", help=".npz with uint8 'image' (N, H, W, C) and int 'label'")
    p.add_argument("model", choices=sorted(MODELS))
    p.add_argument("batch_size", type=int)
    p.add_argument("repeats", type=int)
    args = p.parse_args()
    data = np.load(args.data)
    n = len(data["image"]) // args.batch_size * args.batch_size
    x, y = data["image"][:n].astype(np.float32) / 255.0, data["label"][:n]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(x.shape[1:]), *MODELS[args.model]()])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.repeats + 1, shuffle=True, verbose=0, callbacks=[timer])
    times = timer.seconds[1:]  # the first epoch traces and compiles, and is not counted
    steady = statistics.median(times)
    backend = keras.backend.backend()
    print(json.dumps({
        "model": args.model, "impl": f"keras-{'tf' if backend == 'tensorflow' else backend}", "device": "cpu",
        "batch_size": args.batch_size, "examples": n, "epoch_seconds": steady, "epoch_seconds_all": times,
        "images_per_second": n / steady, "compile_seconds": max(timer.seconds[0] - steady, 0.0),
        "params": model.count_params(), "version": f"keras {keras.__version__}",
        "xla_flags": os.environ.get("XLA_FLAGS", "")}))


if __name__ == "__main__":
    main()
