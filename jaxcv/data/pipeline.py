"""Datasets by name, prepared once and read as whole splits of uint8 arrays (``load_split``).

Every dataset is a TFDS dataset stored as array_record and read through a TFDS data source,
with no TensorFlow:

- embedded (``shapes/*``): generated here on first use;
- real (``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``): prepared by jaxcv's builders
  from their original files, found in the data dir or else downloaded over HTTPS;
- ``image_folder/<name>``: prepared with ``python -m jaxcv.data prepare image_folder``;
- any other dataset prepared in the data dir (by TFDS or anything else).

TensorFlow (the ``tf`` extra) is needed only to prepare other TFDS catalogue datasets and to
read data dirs prepared as TFRecord (``jaxcv.data.tfroute``).  A dataset is prepared into the
data dir when it is writable, else into TFDS's default data dir (``$TFDS_DATA_DIR`` or
``~/tensorflow_datasets``), where it is found again; TFDS prepares in a temporary folder renamed
at the end, so an interrupted preparation leaves nothing that loads, and processes that ask for
the same dataset at once prepare it once (a lock beside its folder; the others wait, then read it).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import socket
import stat
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds

from jaxcv.data import builders, real
from jaxcv.data.folders import ImageFolder, ImageFolderConfig
from jaxcv.data.originals import DataUnavailableError

Arrays = dict[str, np.ndarray]

EMBEDDED = tuple(f"shapes/{c.name}" for c in builders.Shapes.BUILDER_CONFIGS)
"""Datasets generated offline by jaxcv itself."""
CATALOGUED = tuple(real.BUILDERS)
"""The real datasets jaxcv prepares from their original files (found or downloaded)."""
ARRAY_RECORD = tfds.core.FileFormat.ARRAY_RECORD
_CATALOGUE_HOST = ("storage.googleapis.com", 443)
_CHUNK = 4096
_VERSION = re.compile(r"\d+\.\d+\.\d+")


def default_data_dir() -> Path:
    """TFDS's default data dir: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``."""
    return Path(tfds.core.constants.get_default_data_dir())


def _writable(folder: Path) -> bool:
    """Whether ``folder`` exists or can be made, and may be written (read-only permission bits
    are respected for root too)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & stat.S_IWUSR)


def output_dir(data_dir: str | os.PathLike | None) -> Path:
    """Where a dataset asked for in ``data_dir`` is prepared: there if writable, else in the
    default data dir."""
    if data_dir is not None and _writable(Path(data_dir)):
        return Path(data_dir)
    return default_data_dir()


def _roots(data_dir: str | os.PathLike | None) -> list[Path]:
    """Where prepared datasets are looked for: ``data_dir`` and ``output_dir(data_dir)``."""
    given = [Path(data_dir)] if data_dir is not None else []
    return list(dict.fromkeys([*given, output_dir(data_dir)]))


def _unavailable(name: str, data_dir: str | os.PathLike | None, why: str) -> DataUnavailableError:
    where = data_dir or f"the default data dir ({default_data_dir()})"
    return DataUnavailableError(
        f"dataset {name!r} is not prepared in {where} and {why}. Put its original files (or a TFDS data "
        f"dir holding it) in a folder and pass it with --data-dir, or use an embedded dataset that "
        f"needs no download: {', '.join(EMBEDDED)}.")


def _unknown(name: str) -> DataUnavailableError:
    return DataUnavailableError(f"unknown dataset {name!r}; use one of {', '.join(CATALOGUED)}, an embedded one "
                                f"({', '.join(EMBEDDED)}), image_folder/<name> or a TFDS catalogue name")


def own_builder(name: str, data_dir: Path, **config) -> tfds.core.DatasetBuilder | None:
    """jaxcv's builder of ``name`` under ``data_dir`` (``config``: an image folder's
    ``ImageFolderConfig`` fields), or ``None`` if jaxcv has none.  No file format is asked for:
    the folder may hold TFRecord (``prepare`` writes array_record)."""
    if name in EMBEDDED:
        return builders.Shapes(config=name.split("/", 1)[1], data_dir=data_dir)
    if name in real.BUILDERS:
        return real.BUILDERS[name](data_dir=data_dir)
    if name.startswith("image_folder/") and config:
        return ImageFolder(config=ImageFolderConfig(name=name.split("/", 1)[1], **config), data_dir=data_dir)
    return None


def is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
    """Whether ``builder``'s dataset is on disk (TFDS renames its folder into place when complete;
    unlike ``builder.is_prepared()``, no warning when it is not)."""
    return (Path(builder.data_dir) / "dataset_info.json").is_file()


def _prepared_version(folder: Path) -> Path | None:
    """The newest ``<version>`` sub-folder of ``folder`` holding a prepared dataset."""
    versions = [d for d in folder.glob("*.*.*") if _VERSION.fullmatch(d.name) and (d / "dataset_info.json").is_file()]
    return max(versions, key=lambda d: tfds.core.Version(d.name), default=None)


def find_prepared(name: str, data_dir: str | os.PathLike | None, any_version: bool = False) -> tfds.core.DatasetBuilder | None:
    """``name`` as prepared in ``_roots(data_dir)`` (a builder reading its folder as it is on
    disk, whatever its file format), or ``None``: jaxcv's own datasets at their builder's version
    (any version if ``any_version``), others at their newest."""
    for root in _roots(data_dir):
        builder = None if any_version else own_builder(name, root)
        if builder is not None:
            if is_prepared(builder):
                return tfds.builder_from_directory(builder.data_dir)
        elif version := _prepared_version(root / name):
            return tfds.builder_from_directory(version)
    return None


def originals_folder(name: str, folder: Path) -> Path:
    """Where in ``folder`` the real dataset ``name``'s original files are, or an error naming
    those missing."""
    distribution = real.BUILDERS[name].DISTRIBUTION
    found = distribution.locate([folder, folder / "downloads" / name])
    if found is None:
        raise DataUnavailableError(f"{folder}: the original files of {name} are not there (missing "
                                   f"{', '.join(distribution.missing(folder))})")
    return found


def prepare(name: str, data_dir: str | os.PathLike | None = None, originals: Path | None = None,
            **config) -> tfds.core.DatasetBuilder:
    """Prepare ``name`` (jaxcv's own dataset) under ``output_dir(data_dir)`` and return its
    builder (reading the prepared folder); a real dataset from the verified files in
    ``originals``, an image folder from ``config`` (``source``, ``size``, ``test_fraction``).
    Already prepared: nothing is done."""
    builder = own_builder(name, output_dir(data_dir), **config)
    if builder is None:
        raise DataUnavailableError(f"jaxcv prepares {', '.join((*EMBEDDED, *CATALOGUED, 'image_folder/<name>'))}, "
                                   f"not {name!r}")
    if not is_prepared(builder):
        with _sole_preparer(Path(builder.data_dir)):
            if not is_prepared(builder):  # or another process prepared it while this one waited
                download_config = tfds.download.DownloadConfig(manual_dir=originals and os.fspath(originals))
                with tempfile.TemporaryDirectory(prefix="jaxcv-tfds-") as scratch:  # TFDS's empty download folders
                    builder.download_and_prepare(download_dir=scratch, file_format=ARRAY_RECORD,
                                                 download_config=download_config)
    prepared = tfds.builder_from_directory(builder.data_dir)
    if "size" in config and prepared.info.features["image"].shape[:2] != tuple(config["size"]):
        raise DataUnavailableError(f"{builder.data_dir}: already prepared at {prepared.info.features['image'].shape[:2]}"
                                   f", not {tuple(config['size'])}; choose another name or delete that folder")
    return prepared


@contextlib.contextmanager
def _sole_preparer(folder: Path) -> Iterator[None]:
    """Hold the lock on preparing ``folder`` for the block (an exclusive ``flock`` on
    ``.<version>.lock`` beside it), waiting for a process that holds it: two studies started at
    once on a fresh data dir would otherwise both prepare, and TFDS's final rename fails for the
    second."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder.parent / f".{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process to finish preparing {folder}", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _original_folders(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    given = [Path(data_dir), Path(data_dir) / "downloads" / name] if data_dir is not None else []
    return list(dict.fromkeys([*given, output_dir(data_dir) / "downloads" / name]))


def _online(timeout: float = 3.0) -> bool:
    """Whether TFDS's download servers answer; never when ``JAXCV_OFFLINE`` is set."""
    if os.environ.get("JAXCV_OFFLINE"):
        return False
    try:
        socket.create_connection(_CATALOGUE_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def prepared_builder(name: str, data_dir: str | os.PathLike | None = None) -> tfds.core.DatasetBuilder:
    """The builder of ``name``, prepared: found prepared, else generated (embedded), made from
    the original files found in ``data_dir`` or downloaded (real), or prepared by TFDS with
    TensorFlow (other catalogue datasets).  ``DataUnavailableError`` at once (no retries) when
    it cannot be had."""
    if builder := find_prepared(name, data_dir):
        return builder
    if name in EMBEDDED:
        return prepare(name, data_dir)
    if name in real.BUILDERS:
        distribution = real.BUILDERS[name].DISTRIBUTION
        folders = _original_folders(name, data_dir)
        if folder := distribution.locate(folders):
            return prepare(name, data_dir, folder)
        if builder := find_prepared(name, data_dir, any_version=True):
            return builder  # e.g. prepared by TFDS's catalogue builder, as TFRecord
        try:
            folder = distribution.download(folders[-1])
        except DataUnavailableError as e:
            raise _unavailable(name, data_dir, f"its original files are not there either ({e})") from None
        return prepare(name, data_dir, folder)
    if name.startswith("image_folder/"):
        raise DataUnavailableError(
            f"{name!r} is not prepared in {data_dir or default_data_dir()}: prepare it with `python -m jaxcv.data "
            f"prepare image_folder --from FOLDER --name {name.split('/', 1)[1]} --size N --to DATA_DIR`")
    return _prepare_catalogued(name, data_dir)


def _catalogued(name: str, data_dir: Path, purpose: str) -> tfds.core.DatasetBuilder:
    """TFDS's catalogue builder of ``name`` (which needs TensorFlow, the ``tf`` extra)."""
    from jaxcv.data import tfroute

    try:
        with _without_clash_reports():
            found = tfds.builder_cls(name.split("/", 1)[0])
    except tfds.core.registered.DatasetNotFoundError:
        raise _unknown(name) from None
    if found.__module__.startswith("jaxcv."):  # jaxcv's builders shadow TFDS's: a name they lack is a typo
        raise _unknown(name)
    tfroute.tensorflow(f"{purpose} the TFDS catalogue dataset {name!r}")
    return tfds.builder(name, data_dir=data_dir, file_format=ARRAY_RECORD)


def _not_a_clash_report(record: logging.LogRecord) -> bool:
    return "already registered" not in record.getMessage()


@contextlib.contextmanager
def _without_clash_reports() -> Iterator[None]:
    """TFDS's first catalogue lookup imports its own builders, whose ``mnist``, ``cifar10`` ...
    clash with jaxcv's builders of those names: TFDS logs each clash as an error with a
    traceback and carries on (the lookup is right).  Those reports are dropped, nothing else."""
    absl = logging.getLogger("absl")
    absl.addFilter(_not_a_clash_report)
    try:
        yield
    finally:
        absl.removeFilter(_not_a_clash_report)


def _prepare_catalogued(name: str, data_dir: str | os.PathLike | None) -> tfds.core.DatasetBuilder:
    """Another TFDS catalogue dataset, downloaded and prepared as array_record by TFDS."""
    builder = _catalogued(name, output_dir(data_dir), "preparing")
    if not _online():
        raise _unavailable(name, data_dir, "this machine cannot reach the download servers")
    builder.download_and_prepare(file_format=ARRAY_RECORD)
    return builder


def check_split(builder: tfds.core.DatasetBuilder, split: str) -> None:
    if split.split("[", 1)[0] not in builder.info.splits:
        raise DataUnavailableError(f"dataset {builder.info.full_name} has no split {split!r} "
                                   f"(it has {', '.join(builder.info.splits)})")


def numeric(example: dict) -> dict[str, np.ndarray]:
    """An example's numeric features (text features such as CIFAR-10's ``id`` cannot live on a
    device), ``label`` as int32."""
    out = {k: np.asarray(v) for k, v in example.items() if np.asarray(v).dtype.kind in "biuf"}
    if "label" in out:
        out["label"] = out["label"].astype(np.int32)
    return out


def load_split(name: str, split: str, data_dir: str | os.PathLike | None = None) -> Arrays:
    """A whole split in memory: ``image`` uint8 ``(N, H, W, C)``, ``label`` int32 ``(N,)``, and
    every other numeric feature of the dataset (``vertices``, ``clean`` ...) under its own name,
    in the dataset's order."""
    builder = prepared_builder(name, data_dir)
    check_split(builder, split)
    if builder.info.file_format != ARRAY_RECORD:
        from jaxcv.data import tfroute

        return tfroute.load_split(builder, split)
    source = builder.as_data_source(split=split)
    if len(source) == 0:
        raise DataUnavailableError(f"split {split!r} of dataset {name!r} is empty")
    first = numeric(source[0])
    out = {k: np.empty((len(source), *v.shape), v.dtype) for k, v in first.items()}
    for start in range(0, len(source), _CHUNK):
        for i, example in enumerate(source.__getitems__(range(start, min(start + _CHUNK, len(source)))), start):
            for k, v in numeric(example).items():
                out[k][i] = v
    out["image"] = out["image"].astype(np.uint8, copy=False)
    return out


def num_classes(name: str, data_dir: str | os.PathLike | None = None) -> int:
    """Number of classes of a dataset's ``label`` feature (no data is read or prepared)."""
    builder = (find_prepared(name, data_dir) or own_builder(name, output_dir(data_dir))
               or _catalogued(name, output_dir(data_dir), "describing"))
    return builder.info.features["label"].num_classes
