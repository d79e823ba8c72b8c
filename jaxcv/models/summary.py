"""Per-layer parameter and memory table (report 000's "Parameters Table")."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np


class ParamRow(NamedTuple):
    layer: str
    params: int
    bytes: int


def param_table(params: Any) -> list[ParamRow]:
    """One row per top-level layer of a params tree, in definition order."""
    rows = []
    for layer, sub in params.items():
        leaves = jax.tree_util.tree_leaves(sub)
        count = sum(int(np.prod(x.shape)) for x in leaves)
        rows.append(ParamRow(layer, count, sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in leaves)))
    return rows


def count_params(params: Any) -> int:
    """Total number of parameters in a params tree."""
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))
