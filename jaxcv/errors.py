"""The one exception type meant for the person running a study.

A ``UsageError`` says what the user asked for cannot be done (a bad argument, a missing
file, a dataset that is not there, a run that cannot resume, a model that diverged) and
how to fix it; a study prints its message as one line and exits with code 2.  Any other
exception is a bug in code someone is writing and keeps its traceback.
"""

from __future__ import annotations


class UsageError(Exception):
    """A request that cannot be carried out as given; the message says why and what to do."""
