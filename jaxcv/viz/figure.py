"""Writing a finished matplotlib figure: the one place that sets layout, format and resolution."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from jaxcv.files import replacing  # noqa: E402


def save_figure(fig: plt.Figure, path: str | Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    """Lay ``fig`` out (within ``rect`` of the canvas if given), write it to ``path`` as a 120-dpi
    image, close it, and return the path.  Written atomically (a temporary file beside it,
    renamed), so a killed run leaves the old figure or the new one, never a part."""
    fig.tight_layout(rect=rect)
    path = Path(path)
    try:
        with replacing(path) as f:
            fig.savefig(f, dpi=120, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path
