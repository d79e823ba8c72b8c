"""Making and writing matplotlib figures: the one place that sets layout, format and resolution.

Figures are ``matplotlib.figure.Figure`` objects, never pyplot's: importing or using jaxcv.viz
selects no backend and keeps no figure in a global registry, so a notebook's own backend and
figures are left alone."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from jaxcv.files import replacing


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width x height`` inches, outside pyplot (it needs no closing)."""
    return Figure(figsize=(width, height))


def save_figure(fig: Figure, path: str | Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    """Lay ``fig`` out (within ``rect`` of the canvas if given), write it to ``path`` as a 120-dpi
    image and return the path.  Written atomically (a temporary file beside it,
    renamed), so a killed run leaves the old figure or the new one, never a part."""
    fig.tight_layout(rect=rect)
    path = Path(path)
    with replacing(path) as f:
        fig.savefig(f, dpi=120, format=path.suffix.lstrip(".") or "png")
    return path
