"""The real datasets' original files: where they come from, their published checksums, and
how they are found, verified, downloaded and read (IDX for MNIST-style sets, the CIFAR python
pickles, from the tarball or its extracted batches).

Every file is checked against its published checksum before it is read; a missing, damaged or
wrong file is a ``DataUnavailableError`` naming it.  A download lands in a temporary file that
is renamed into place only once its checksum matches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from jaxcv.errors import UsageError
from jaxcv.files import replacing


class DataUnavailableError(UsageError):
    """A dataset cannot be had as asked: not prepared, not downloadable from here, or its
    files are missing or damaged (the message names the file)."""


_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Original:
    """One file as its authors distribute it."""

    name: str
    url: str
    sha256: str
    """Of the file as published."""
    gunzipped_sha256: str | None = None
    """Of a ``.gz`` file's content, where published: accepts a copy that was compressed again."""


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A dataset's original files; ``extracted`` names the folder its tarball unpacks to, whose
    members (with their published MD5s) are accepted in place of the tarball."""

    files: tuple[Original, ...]
    extracted: str | None = None
    members_md5: tuple[tuple[str, str], ...] = ()

    def locate(self, folders: list[Path]) -> Path | None:
        """The first of ``folders`` that holds every file (or the extracted batches folder
        itself, or one holding it), or ``None``."""
        for folder in folders:
            if all((folder / f.name).is_file() for f in self.files):
                return folder
            if self.extracted:
                for candidate in (folder / self.extracted, folder):
                    if all((candidate / m).is_file() for m, _ in self.members_md5):
                        return candidate
        return None

    def missing(self, folder: Path) -> list[str]:
        """The files (or, for a tarball, the extracted members) that ``folder`` lacks."""
        files = [f.name for f in self.files if not (folder / f.name).is_file()]
        if self.extracted and files:
            return [f"{files[0]} (or the {self.extracted}/ it unpacks to)"]
        return files

    def verify(self, folder: Path) -> None:
        """Check every file ``locate`` found in ``folder`` against its published checksum."""
        if all((folder / f.name).is_file() for f in self.files):
            for f in self.files:
                verify_file(folder / f.name, f)
        else:
            for member, md5 in self.members_md5:
                _check(folder / member, "MD5", md5, _digest(folder / member, "md5"))

    def download(self, folder: Path) -> Path:
        """Fetch every file missing from ``folder`` over HTTPS, checked; ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        for f in self.files:
            if not (folder / f.name).is_file():
                download(f, folder / f.name)
        return folder


def _digest(path: Path, algorithm: str, gunzip: bool = False) -> str:
    h = hashlib.new(algorithm)
    with _reading(path, gunzip) as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check(what: Path | str, algorithm: str, expected: str, actual: str) -> None:
    if actual != expected:
        raise DataUnavailableError(
            f"{what}: wrong {algorithm} checksum ({actual}, published: {expected}): the file is "
            f"damaged or not the original; delete it and download it again")


def verify_file(path: Path, original: Original) -> None:
    """``path`` is ``original`` as published, or (for a ``.gz``) holds its published content."""
    actual = _digest(path, "sha256")
    if actual == original.sha256:
        return
    if original.gunzipped_sha256:
        _check(path, "SHA-256 (of the decompressed content)", original.gunzipped_sha256,
               _digest(path, "sha256", gunzip=True))
    else:
        _check(path, "SHA-256", original.sha256, actual)


@contextlib.contextmanager
def _reading(path: Path, gunzip: bool = False) -> Iterator[BinaryIO]:
    """``path`` open for reading (decompressed if ``gunzip``); a missing, truncated or corrupt
    file is a ``DataUnavailableError`` naming it."""
    try:
        file = gzip.open(path, "rb") if gunzip else open(path, "rb")
    except FileNotFoundError:
        raise DataUnavailableError(f"{path}: no such file") from None
    with file:
        try:
            yield file
        except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError, pickle.UnpicklingError) as e:
            raise DataUnavailableError(f"{path}: damaged or truncated file ({e})") from None


def download(original: Original, path: Path, timeout: float = 30.0) -> Path:
    """``original.url`` saved as ``path`` once its SHA-256 matches (a temporary file until then);
    any network failure is one ``DataUnavailableError``, never a retry."""
    if os.environ.get("JAXCV_OFFLINE"):
        raise DataUnavailableError(f"{original.name}: not downloaded (JAXCV_OFFLINE is set)")
    print(f"downloading {original.url}", flush=True)
    try:
        h = hashlib.sha256()
        with replacing(path) as out, urllib.request.urlopen(original.url, timeout=timeout) as response:
            while chunk := response.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
            _check(original.url, "SHA-256", original.sha256, h.hexdigest())
    except (urllib.error.URLError, OSError) as e:
        raise DataUnavailableError(f"downloading {original.url} failed ({e})") from None
    return path


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format, gzip-compressed): its uint8 array of the shape in its header."""
    with _reading(path, gunzip=True) as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataUnavailableError(f"{path}: not an IDX file of unsigned bytes")
    dims = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", dims, offset=4)) if len(raw) >= 4 + 4 * dims else None
    if shape is None or len(raw) != 4 + 4 * dims + int(np.prod(shape)):
        raise DataUnavailableError(f"{path}: truncated IDX file (its header promises {shape})")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def read_pickles(source: Path, extracted: str, members: list[str]) -> Iterator[tuple[str, dict[bytes, Any]]]:
    """``(member, unpickled dict)`` for each of ``members``: from the tarball ``source`` (where
    they sit in the folder ``extracted``), or from the folder ``source`` itself."""
    if source.is_dir():
        for member in members:
            with _reading(source / member) as f:
                yield member, pickle.load(f, encoding="bytes")
        return
    with _reading(source) as f, tarfile.open(fileobj=f, mode="r:gz") as tar:
        for member in members:
            try:
                handle = tar.extractfile(f"{extracted}/{member}")
            except KeyError:
                raise DataUnavailableError(f"{source}: has no {extracted}/{member}") from None
            yield member, pickle.load(handle, encoding="bytes")
