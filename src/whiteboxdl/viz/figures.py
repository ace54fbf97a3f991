"""Small matplotlib helpers shared by all figures (headless backend, consistent saving).

Example
-------
>>> from whiteboxdl.viz.figures import new_figure, save_figure
>>> fig, ax = new_figure()
>>> _ = ax.plot([0, 1], [0, 1])
>>> import tempfile, os; p = save_figure(fig, tempfile.mktemp(suffix=".png")); os.path.getsize(p) > 0
True
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def new_figure(rows: int = 1, cols: int = 1, size: tuple[float, float] | None = None, **kwargs):
    """``plt.subplots`` with a size that scales with the grid."""
    size = size or (3.2 * cols, 3.0 * rows)
    return plt.subplots(rows, cols, figsize=size, squeeze=False if (rows, cols) != (1, 1) else True,
                        **kwargs)


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG (creating folders) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
