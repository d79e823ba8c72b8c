"""The one exception type meant for the person running a study.

A ``UsageError`` says what the user asked for cannot be done (a bad argument, a missing
file, a dataset that is not there, a run that cannot resume, a model that diverged) and
how to fix it; a study prints its message as one line and exits with code 2.  Any other
exception is a bug in code someone is writing and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator


class UsageError(Exception):
    """A request that cannot be carried out as given; the message says why and what to do."""


@contextlib.contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """A ``UsageError`` raised in the block becomes one line on stderr and exit code 2, as a
    command line answers a mistake its user can fix; any other exception keeps its traceback."""
    try:
        yield
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
