"""The embedded datasets, as TFDS builders: generated here, never downloaded.

Importing this module registers ``shapes`` with TFDS, so ``tfds.load("shapes/cifar")``
works like any catalogued dataset and caches its TFRecords in the TFDS data dir.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from jaxcv.data.shapes import CIFAR_SHAPES, CLASSIC_SHAPES, render_cifar, render_classic


@dataclasses.dataclass
class ShapesConfig(tfds.core.BuilderConfig):
    image_size: int = 72
    channels: int = 1
    classes: tuple[str, ...] = CLASSIC_SHAPES
    free: bool = False
    noise: float = 0.0
    train_size: int = 3000
    test_size: int = 600


class Shapes(tfds.core.GeneratorBasedBuilder):
    """Generated shapes of seed 004 (72x72 grey) and a CIFAR-shaped colour variant."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        ShapesConfig(name="easy", description="Centred upright square/circle/triangle, 72x72."),
        ShapesConfig(name="hard", free=True, noise=0.3,
                     description="Moved and rotated square/circle/triangle with noise, 72x72."),
        ShapesConfig(name="cifar", image_size=32, channels=3, classes=CIFAR_SHAPES,
                     train_size=5000, test_size=1000,
                     description="Ten shape classes in colour on cluttered backgrounds, 32x32x3."),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(cfg.image_size, cfg.image_size, cfg.channels)),
                "label": tfds.features.ClassLabel(names=list(cfg.classes)),
            }),
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
            if cfg.channels == 3:
                image = render_cifar(rng, int(label), cfg.image_size)
            else:
                image = render_classic(rng, int(label), cfg.image_size, cfg.free, cfg.noise)[..., None]
            yield i, {"image": image, "label": int(label)}
