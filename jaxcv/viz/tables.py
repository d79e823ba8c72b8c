"""Markdown tables and the number formats the summaries use."""

from __future__ import annotations

import statistics
from typing import Callable, Sequence

from jaxcv.models.summary import ParamRow
from jaxcv.train import FitResult


def mean_std(values: Sequence[float], fmt: str = ".3f") -> str:
    """``"m ± s"`` over seeds (just ``"m"`` for one value)."""
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.fmean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-markdown table; every cell is ``str()``-ed."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def human_bytes(n: float) -> str:
    """Bytes in B / kB / MB / GB of 1024 (the report's "~ 36.125 kB")."""
    for unit in ("B", "kB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def param_table_markdown(rows: Sequence[ParamRow]) -> str:
    """Report 000's "Parameters Table": parameters and memory per layer, and the total."""
    total = ParamRow("**total**", sum(r.params for r in rows), sum(r.bytes for r in rows))
    return markdown_table(["layer", "parameters", "memory"],
                          [(r.layer, f"{r.params:,}", human_bytes(r.bytes)) for r in (*rows, total)])


FIT_COLUMNS = ("final val acc", "best val acc", "train − val acc", "s / epoch / model", "compile s")


def epoch_seconds(results: Sequence[FitResult]) -> float:
    """Median seconds per epoch per model over ``results`` (vmapped seeds share an epoch: its
    time over their number)."""
    return statistics.median(e["epoch_seconds"] / e.get("models", 1) for r in results for e in r.history)


def over_seeds(results: Sequence[FitResult], value: Callable[[FitResult], float], fmt: str = ".3f") -> str:
    """``mean_std`` of ``value(result)`` over the seeds that did not fail, then how many failed
    (``"0.912 ± 0.004 (1 of 3 seeds failed)"``); ``"failed"`` if all did."""
    ok = [value(r) for r in results if not r.failed]
    if not ok:
        return "failed"
    failed = len(results) - len(ok)
    return mean_std(ok, fmt) + (f" ({failed} of {len(results)} seeds failed)" if failed else "")


def fit_row(results: Sequence[FitResult]) -> list[str]:
    """One variant's runs over seeds as the cells of ``FIT_COLUMNS``: final and best validation
    accuracy and the final train − validation gap (mean ± std over the seeds that did not
    fail, the failed ones counted in the first cell), ``epoch_seconds`` and the mean compile
    time."""
    ok = [r for r in results if not r.failed]
    if not ok:
        return ["failed", *["—"] * (len(FIT_COLUMNS) - 1)]
    final = [r.history[-1] for r in ok]
    return [over_seeds(results, lambda r: r.history[-1]["val_accuracy"]),
            mean_std([max(e["val_accuracy"] for e in r.history) for r in ok]),
            mean_std([e["train_accuracy"] - e["val_accuracy"] for e in final]),
            f"{epoch_seconds(results):.2f}", f"{statistics.fmean(r.compile_seconds for r in results):.1f}"]
