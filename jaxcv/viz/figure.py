"""Writing a finished matplotlib figure: the one place that sets layout, format and resolution."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    """Lay ``fig`` out (within ``rect`` of the canvas if given), write it to ``path`` as a 120-dpi
    image, close it, and return the path."""
    fig.tight_layout(rect=rect)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
