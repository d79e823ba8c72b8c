"""Learning curves: one run, or several runs per variant as mean ± std bands."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import matplotlib.ticker
import numpy as np

from jaxcv.train import FitResult, History
from jaxcv.viz.figure import new_figure, save_figure


def metric_names(records: History) -> list[str]:
    """Metrics logged for both train and val (``loss``, ``accuracy`` ...), loss first."""
    keys = records[0].keys()
    names = [k[len("train_"):] for k in keys if k.startswith("train_") and f"val_{k[6:]}" in keys]
    return sorted(names, key=lambda n: n != "loss")


def plot_runs(runs: Mapping[str, Sequence[FitResult | History]], path: str | Path, title: str = "") -> Path:
    """One panel per metric; per variant, the mean over its runs (seeds: results or their
    histories) with a ± std band, validation solid and training dashed."""
    runs = {variant: [r.history if isinstance(r, FitResult) else r for r in rs] for variant, rs in runs.items()}
    names = metric_names(next(iter(runs.values()))[0])
    fig = new_figure(5.5 * len(names), 4)
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names):
        for colour, (variant, seeds) in zip(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"], runs.items()):
            for split, style in (("val", "-"), ("train", "--")):
                length = min(len(r) for r in seeds)
                values = np.array([[rec[f"{split}_{name}"] for rec in r[:length]] for r in seeds])
                epochs = np.arange(1, length + 1)
                mean, std = values.mean(0), values.std(0)
                ax.plot(epochs, mean, style, color=colour, label=f"{variant} ({split})")
                if len(seeds) > 1:
                    ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.15)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_lines(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, *,
               xlabel: str, ylabel: str, title: str = "", logx: bool = False) -> Path:
    """One panel of named ``(x, y)`` lines with markers (a quantity against epochs, batch
    sizes or trials)."""
    fig = new_figure(6, 4)
    ax = fig.subplots()
    for name, (x, y) in series.items():
        ax.plot(x, y, "o-", markersize=3, label=name)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_bars(groups: Mapping[str, Mapping[str, float]], path: str | Path, *, ylabel: str, title: str = "",
              logy: bool = False) -> Path:
    """Grouped bars: one group per key of ``groups`` (a model), one bar per inner key (an
    implementation on a device); missing bars are left out."""
    names = list(dict.fromkeys(k for bars in groups.values() for k in bars))
    width = 0.8 / max(len(names), 1)
    fig = new_figure(max(6, 1.2 * len(groups) * max(len(names), 2) * 0.45), 4)
    ax = fig.subplots()
    for i, name in enumerate(names):
        xs = [g for g, bars in enumerate(groups.values()) if name in bars]
        ys = [bars[name] for bars in groups.values() if name in bars]
        ax.bar([x + (i - (len(names) - 1) / 2) * width for x in xs], ys, width, label=name)
    ax.set_xticks(range(len(groups)), list(groups), rotation=20, ha="right", fontsize=8)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def plot_history(records: History, path: str | Path, title: str = "") -> Path:
    """Train and validation curves of a single run."""
    return plot_runs({"run": [records]}, path, title)
