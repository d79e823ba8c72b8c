"""The text and JSON files a run writes: written atomically (a kill or a power loss leaves the
old file or the new one, never a part), JSON strictly valid, and a damaged one named.

JSON has no NaN or infinity: a non-finite float is written as the string ``"NaN"``,
``"Infinity"`` or ``"-Infinity"`` (``float()`` reads each back) and ``read_json`` turns those
strings back into floats.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from jaxcv.errors import UsageError

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def to_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by its name."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else "Infinity" if obj > 0 else "-Infinity"
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    return obj


def from_json(obj: Any) -> Any:
    """``obj`` as ``to_json`` had it: the names of non-finite floats as floats again."""
    if isinstance(obj, str):
        return _NON_FINITE.get(obj, obj)
    if isinstance(obj, dict):
        return {k: from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_json(v) for v in obj]
    return obj


@contextlib.contextmanager
def replacing(path: str | Path, *, sync: bool = False) -> Iterator[BinaryIO]:
    """A binary file whose content becomes ``path``'s when the block ends: a temporary file
    beside it (synced first if ``sync``), renamed over ``path``; removed if the block raises.
    A kill or a crash leaves the old file or the new one, never a part."""
    path = Path(path)
    fd, temp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def _create_beside(path: Path) -> tuple[int, str]:
    """A new empty file beside ``path``, open for writing: its descriptor and name.  Created with
    the permissions a plain ``open`` gives (0666 less the umask), not ``mkstemp``'s 0600, so the
    run's figures and tables are as readable as any other file the user writes."""
    while True:
        temp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(temp)
        except FileExistsError:
            continue


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and synced (``replacing``)."""
    with replacing(path, sync=True) as f:
        f.write(text.encode())
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` to ``path`` as strictly valid JSON (``to_json``), atomically."""
    return write_text(path, json.dumps(to_json(obj), indent=1, allow_nan=False) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON in ``path`` (``from_json``); a ``UsageError`` naming it if it is not JSON."""
    try:
        return from_json(json.loads(Path(path).read_bytes()))
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise UsageError(f"{path} is damaged ({e}); restore it or delete it") from None
