"""Shared fixtures: one TFDS data dir per test session holding the embedded datasets."""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest

MNIST_T10K = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist-t10k"


def pytest_configure(config):
    """One fresh on-disk XLA cache per session, inherited by the scripts the tests run: a
    program compiles once per session however many processes need it."""
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jaxcv-xla-"))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def shapes_cifar(data_dir):
    from jaxcv.data import load_split

    return load_split("shapes/cifar", "train", data_dir), load_split("shapes/cifar", "test", data_dir)


def _splits(name: str, data_dir: str):
    from jaxcv.data import load_split

    return load_split(name, "train", data_dir), load_split(name, "test", data_dir)


@pytest.fixture(scope="session")
def shapes_easy(data_dir):
    return _splits("shapes/easy", data_dir)


@pytest.fixture(scope="session")
def shapes_hard(data_dir):
    return _splits("shapes/hard", data_dir)


@pytest.fixture(scope="session")
def shapes_triangles(data_dir):
    return _splits("shapes/triangles", data_dir)


@pytest.fixture(scope="session")
def shapes_denoise(data_dir):
    return _splits("shapes/denoise", data_dir)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


@pytest.fixture(scope="session")
def mnist_t10k():
    """The real MNIST test set (10,000 digits) from ../shared/data, or skip."""
    images, labels = MNIST_T10K / "t10k-images-idx3-ubyte.gz", MNIST_T10K / "t10k-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        pytest.skip(f"real MNIST test set not found in {MNIST_T10K}")
    return {"image": _read_idx(images)[..., None], "label": _read_idx(labels).astype(np.int32)}
