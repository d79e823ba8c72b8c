"""The embedded datasets, as TFDS builders: generated here, never downloaded.

Importing this module registers ``shapes`` with TFDS, so ``tfds.data_source("shapes/cifar",
builder_kwargs={"file_format": "array_record"})`` works like any catalogued dataset (no
TensorFlow needed) and keeps its array_record files in the TFDS data dir.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from jaxcv.data.shapes import (CIFAR_SHAPES, CLASSIC_SHAPES, classic_ink, ink_image, render_cifar,
                               render_classic, render_triangle)

TASKS = ("classify", "vertices", "denoise")


def image_feature(shape: tuple[int, int, int]) -> tfds.features.Tensor:
    """uint8 pixels stored as raw bytes: written and read without an image codec (TFDS's
    ``Image`` feature would need TensorFlow to encode arrays)."""
    return tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES)


class _LocalInfo(tfds.core.DatasetInfo):
    def initialize_from_bucket(self) -> None:
        """Nothing to fetch: the dataset is generated here or read from local files.  TFDS (4.9)
        asks its GCS bucket for metadata whenever a builder's dataset is not prepared yet, even
        offline, and first makes an empty temporary folder that it never removes (2,934 of them
        in this machine's /tmp after a day of test runs)."""


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A builder of data generated here or read from local files, whose ``DatasetInfo`` never
    looks for the dataset on TFDS's GCS bucket (jaxcv's builders have no metadata files: no
    description or citation to add)."""

    def dataset_info_from_configs(self, **kwargs) -> tfds.core.DatasetInfo:
        return _LocalInfo(builder=self, **kwargs)


@dataclasses.dataclass
class ShapesConfig(tfds.core.BuilderConfig):
    image_size: int = 72
    channels: int = 1
    classes: tuple[str, ...] = CLASSIC_SHAPES
    free: bool = False
    noise: float = 0.0
    train_size: int = 3000
    test_size: int = 600
    task: str = "classify"
    """``classify``: image + label; ``vertices``: + the triangle's ``vertices``; ``denoise``:
    a noisy ``image`` + its ``clean`` twin."""


class Shapes(LocalBuilder):
    """Generated shapes of report 004 (72x72 grey: classification, vertex regression, denoising)
    and a CIFAR-shaped colour variant."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"1.0.0": "First release.",
                     "1.1.0": "shapes/triangles (vertex regression) and shapes/denoise (noisy/clean pairs).",
                     "2.0.0": "Images as raw uint8 tensors (no PNG codec), prepared as array_record without "
                              "TensorFlow; the same examples as 1.1.0."}
    BUILDER_CONFIGS = [
        ShapesConfig(name="easy", description="Centred upright square/circle/triangle, 72x72."),
        ShapesConfig(name="hard", free=True, noise=0.3,
                     description="Moved and rotated square/circle/triangle with noise, 72x72."),
        ShapesConfig(name="cifar", image_size=32, channels=3, classes=CIFAR_SHAPES,
                     train_size=5000, test_size=1000,
                     description="Ten shape classes in colour on cluttered backgrounds, 32x32x3."),
        ShapesConfig(name="triangles", classes=("triangle",), noise=0.3, task="vertices",
                     description="Random noisy triangles and their vertices (x0, y0, x1, y1, x2, y2) "
                                 "in [0, 1], in drawing order, 72x72."),
        ShapesConfig(name="denoise", free=True, noise=0.5, task="denoise", train_size=2000, test_size=400,
                     description="Moved and rotated square/circle/triangle, noisy image and clean "
                                 "target, 72x72."),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        if cfg.task not in TASKS:
            raise ValueError(f"shapes task must be one of {', '.join(TASKS)}, got {cfg.task!r}")
        image = image_feature((cfg.image_size, cfg.image_size, cfg.channels))
        features = {"image": image, "label": tfds.features.ClassLabel(names=list(cfg.classes))}
        if cfg.task == "vertices":
            features["vertices"] = tfds.features.Tensor(shape=(6,), dtype=np.float32)
        elif cfg.task == "denoise":
            features["clean"] = image
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        return {
            "train": self._generate_examples(cfg.train_size, seed=0),
            "test": self._generate_examples(cfg.test_size, seed=1),
        }

    def _generate_examples(self, count: int, seed: int):
        cfg = self.builder_config
        rng = np.random.default_rng([seed, len(cfg.classes), cfg.image_size])
        labels = rng.integers(0, len(cfg.classes), size=count)
        for i, label in enumerate(labels):
            if cfg.task == "vertices":
                image, vertices = render_triangle(rng, cfg.image_size, cfg.noise)
                yield i, {"image": image[..., None], "label": 0, "vertices": vertices}
            elif cfg.task == "denoise":
                ink = classic_ink(rng, int(label), cfg.image_size, cfg.free)
                yield i, {"image": ink_image(ink, rng, cfg.noise)[..., None], "label": int(label),
                          "clean": ink_image(ink, rng)[..., None]}
            elif cfg.channels == 3:
                yield i, {"image": render_cifar(rng, int(label), cfg.image_size), "label": int(label)}
            else:
                image = render_classic(rng, int(label), cfg.image_size, cfg.free, cfg.noise)
                yield i, {"image": image[..., None], "label": int(label)}
