"""The real datasets as TFDS builders that read their original files, with no TensorFlow:
MNIST and Fashion-MNIST from their four IDX ``.gz`` files, CIFAR-10 and CIFAR-100 from the
python tarball or its extracted batches.  Examples keep the files' order.

The builders read their files from ``dl_manager.manual_dir`` (``DownloadConfig(manual_dir=...)``)
after checking them against the published checksums.  They are not registered with TFDS, whose
catalogue has builders of the same names (which need TensorFlow): ``BUILDERS`` maps jaxcv's
names to them.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import ClassVar, Iterator

import numpy as np
import tensorflow_datasets as tfds

from jaxcv.data.builders import LocalBuilder, image_feature
from jaxcv.data.originals import DataUnavailableError, Distribution, Original, read_idx, read_pickles

_MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
_FASHION_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
_IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz")

# SHA-256 of the .gz files as TFDS records them; MNIST's decompressed sums as widely published
# (t10k-labels': of the published .gz's content)
MNIST = Distribution(files=tuple(Original(name, _MNIST_URL + name, sha, gunzipped) for name, sha, gunzipped in zip(
    _IDX,
    ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
     "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
     "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
     "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
     "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
     "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"))))
FASHION_MNIST = Distribution(files=tuple(Original(name, _FASHION_URL + name, sha) for name, sha in zip(
    _IDX,
    ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
     "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
     "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
     "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"))))
# the tarballs' SHA-256 as Keras checks them, their members' MD5 as torchvision does
CIFAR10 = Distribution(
    files=(Original("cifar-10-python.tar.gz", _CIFAR_URL + "cifar-10-python.tar.gz",
                    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),),
    extracted="cifar-10-batches-py",
    members_md5=(("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                 ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                 ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                 ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                 ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
                 ("test_batch", "40351d587109b95175f43aff81a1287e"),
                 ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888")))
CIFAR100 = Distribution(
    files=(Original("cifar-100-python.tar.gz", _CIFAR_URL + "cifar-100-python.tar.gz",
                    "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"),),
    extracted="cifar-100-python",
    members_md5=(("train", "16019d7e3df5f24257cddd939b257f8d"),
                 ("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),
                 ("meta", "7973b15100ade9c7d40fb424638fde48")))

Arrays = dict[str, np.ndarray]


class _FromOriginals(LocalBuilder, skip_registration=True):
    """A builder of a dataset whose original files are in ``manual_dir``; subclasses say which
    files (``DISTRIBUTION``) and how they become split arrays (``read``)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "jaxcv's builder: read from the original files, without TensorFlow."}
    DISTRIBUTION: ClassVar[Distribution]

    @property
    def MANUAL_DOWNLOAD_INSTRUCTIONS(self) -> str:  # noqa: N802 (TFDS's name)
        files = ", ".join(f.url for f in self.DISTRIBUTION.files)
        return f"Place the original files ({files}) in the manual dir."

    @abc.abstractmethod
    def read(self, folder: Path) -> dict[str, Arrays]:
        """The ``train`` and ``test`` splits as arrays, from verified files in ``folder``."""

    def _split_generators(self, dl_manager):
        folder = self.DISTRIBUTION.locate([dl_manager.manual_dir])
        if folder is None:
            raise DataUnavailableError(f"{dl_manager.manual_dir}: does not hold the original files of "
                                       f"{self.name} ({', '.join(f.name for f in self.DISTRIBUTION.files)})")
        self.DISTRIBUTION.verify(folder)
        return {split: self._generate_examples(arrays) for split, arrays in self.read(folder).items()}

    def _generate_examples(self, arrays: Arrays) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        for i in range(len(arrays["label"])):
            yield i, {key: value[i] for key, value in arrays.items()}


class _Idx(_FromOriginals):
    CLASSES: ClassVar[tuple[str, ...]]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"image": image_feature((28, 28, 1)),
                                                 "label": tfds.features.ClassLabel(names=list(self.CLASSES))}),
            supervised_keys=("image", "label"), disable_shuffling=True)

    def read(self, folder: Path) -> dict[str, Arrays]:
        out = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
            labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz")
            if images.ndim != 3 or labels.shape != images.shape[:1] or labels.max() >= len(self.CLASSES):
                raise DataUnavailableError(f"{folder / f'{prefix}-labels-idx1-ubyte.gz'}: {labels.shape} labels "
                                           f"(max {labels.max()}) do not fit {images.shape} images")
            out[split] = {"image": images[..., None], "label": labels.astype(np.int64)}
        return out


class Mnist(_Idx):
    """MNIST: 60,000 + 10,000 handwritten digits, 28x28 grey."""

    name = "mnist"
    DISTRIBUTION = MNIST
    CLASSES = tuple(str(d) for d in range(10))


class FashionMnist(_Idx):
    """Fashion-MNIST: 60,000 + 10,000 Zalando article images, 28x28 grey."""

    name = "fashion_mnist"
    DISTRIBUTION = FASHION_MNIST
    CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")


def _cifar_images(batch: dict[bytes, np.ndarray], member: str) -> np.ndarray:
    data = np.asarray(batch[b"data"], np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataUnavailableError(f"{member}: data of shape {data.shape}, not (N, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


class _Cifar(_FromOriginals):
    LABELS: ClassVar[tuple[tuple[str, bytes, bytes, int], ...]]
    """``(feature, its key in the batch pickles, the key of its names in the meta pickle, classes)``."""
    SPLITS: ClassVar[dict[str, tuple[str, ...]]]
    META: ClassVar[str]

    def _info(self) -> tfds.core.DatasetInfo:
        labels = {feature: tfds.features.ClassLabel(num_classes=n) for feature, _, _, n in self.LABELS}
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"image": image_feature((32, 32, 3)), **labels}),
            supervised_keys=("image", "label"), disable_shuffling=True)

    def read(self, folder: Path) -> dict[str, Arrays]:
        source = folder if (folder / self.META).is_file() else folder / self.DISTRIBUTION.files[0].name
        members = [self.META, *(m for ms in self.SPLITS.values() for m in ms)]
        batches = dict(read_pickles(source, self.DISTRIBUTION.extracted, members))
        meta = batches.pop(self.META)
        for feature, _, names, _ in self.LABELS:
            self.info.features[feature].names = [n.decode() for n in meta[names]]
        return {split: {"image": np.concatenate([_cifar_images(batches[m], m) for m in ms]),
                        **{feature: np.concatenate([np.asarray(batches[m][key], np.int64) for m in ms])
                           for feature, key, _, _ in self.LABELS}}
                for split, ms in self.SPLITS.items()}


class Cifar10(_Cifar):
    """CIFAR-10: 50,000 + 10,000 colour images, 32x32, ten classes."""

    name = "cifar10"
    DISTRIBUTION = CIFAR10
    LABELS = (("label", b"labels", b"label_names", 10),)
    SPLITS = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
    META = "batches.meta"


class Cifar100(_Cifar):
    """CIFAR-100: 50,000 + 10,000 colour images, 32x32, 100 classes (``label``) in 20
    superclasses (``coarse_label``)."""

    name = "cifar100"
    DISTRIBUTION = CIFAR100
    LABELS = (("label", b"fine_labels", b"fine_label_names", 100),
              ("coarse_label", b"coarse_labels", b"coarse_label_names", 20))
    SPLITS = {"train": ("train",), "test": ("test",)}
    META = "meta"


BUILDERS: dict[str, type[_FromOriginals]] = {b.name: b for b in (Mnist, FashionMnist, Cifar10, Cifar100)}
"""jaxcv's name of each real dataset -> its builder."""
