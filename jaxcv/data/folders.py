"""Image-folder datasets: a tree of class sub-folders of JPEG/PNG files (how MIT scenes,
Terrassa and most transfer-learning sets are distributed) as a TFDS builder, with no
TensorFlow.  Every image is read with ``read_image`` as RGB resized to one size.  The splits
are the tree's ``train/`` and ``test/`` sub-trees when it has them, else a fixed fraction of
each class (chosen by a seeded permutation) is the test split.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from jaxcv.data.builders import LocalBuilder, image_feature
from jaxcv.data.images import read_image
from jaxcv.data.originals import DataUnavailableError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclasses.dataclass
class ImageFolderConfig(tfds.core.BuilderConfig):
    """``name``: the dataset's name (``image_folder/<name>``); ``source``: the tree;
    ``size``: ``(height, width)`` every image is resized to; ``test_fraction`` of each class
    (by a permutation seeded with ``seed``) is the test split when the tree has no
    ``train/`` + ``test/``."""

    source: str = ""
    size: tuple[int, int] = (64, 64)
    test_fraction: float = 0.2
    seed: int = 0


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_files(root: Path) -> dict[str, list[Path]]:
    """Each class sub-folder of ``root`` -> its images, sorted; at least two classes, each with
    an image, or a ``DataUnavailableError`` naming the folder."""
    if not root.is_dir():
        raise DataUnavailableError(f"{root}: no such folder")
    classes = {d.name: _images(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise DataUnavailableError(f"{root / empty[0]}: a class folder with no JPEG/PNG images")
    if len(classes) < 2:
        found = f"only {next(iter(classes))!r}" if classes else "none"
        raise DataUnavailableError(f"{root}: an image folder needs at least two class sub-folders of "
                                   f"JPEG/PNG images ({found} found)")
    return classes


def split_files(source: Path, test_fraction: float, seed: int) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """The class names and each split's ``(image, class index)``: the tree's ``train/`` and
    ``test/`` if it has both, else ``test_fraction`` of each class drawn for ``test``."""
    if (source / "train").is_dir() and (source / "test").is_dir():
        trees = {split: class_files(source / split) for split in ("train", "test")}
        names = sorted(trees["train"])
        unknown = sorted(set(trees["test"]) - set(names))
        if unknown:
            raise DataUnavailableError(f"{source / 'test' / unknown[0]}: a test class with no training images")
        return names, {split: [(f, names.index(c)) for c, files in tree.items() for f in files]
                       for split, tree in trees.items()}
    if not 0 < test_fraction < 1:
        raise DataUnavailableError(f"{source}: has no train/ + test/ sub-folders, so a test fraction in (0, 1) "
                                   f"is needed (got {test_fraction})")
    classes = class_files(source)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for label, files in enumerate(classes.values()):
        order = rng.permutation(len(files))
        n_test = round(test_fraction * len(files))
        splits["test"] += [(files[i], label) for i in order[:n_test]]
        splits["train"] += [(files[i], label) for i in order[n_test:]]
    return list(classes), splits


class ImageFolder(LocalBuilder, skip_registration=True):
    """A tree of class sub-folders of JPEG/PNG images (see ``ImageFolderConfig``)."""

    name = "image_folder"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Class sub-folders of JPEG/PNG, resized, without TensorFlow."}

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        if not NAME.fullmatch(cfg.name):
            raise DataUnavailableError(f"image folder name {cfg.name!r}: use letters, digits, '_', '.', '-'")
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"image": image_feature((*cfg.size, 3)),
                                                 "label": tfds.features.ClassLabel()}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        cfg = self.builder_config
        names, splits = split_files(Path(cfg.source), cfg.test_fraction, cfg.seed)
        self.info.features["label"].names = names
        return {split: self._generate_examples(Path(cfg.source), files) for split, files in splits.items()}

    def _generate_examples(self, source: Path, files: list[tuple[Path, int]]) -> Iterator[tuple[str, dict]]:
        size = self.builder_config.size
        for path, label in files:
            yield str(path.relative_to(source)), {"image": read_image(path, size), "label": label}
