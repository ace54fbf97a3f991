"""Drawing the paper's counterfactual grids (computed by :mod:`whiteboxdl.pullbacks.grids`).

A grid is any object with ``images`` (rows, C, H, W), ``columns`` (class indices),
``differences`` (rows, cols, C, H, W) and ``method``; cells are min–max rescaled per cell.

Example
-------
>>> import torch
>>> from whiteboxdl.viz.grids import minmax_per_cell
>>> float(minmax_per_cell(torch.tensor([[[[-2.0, 2.0]]]]))[0].max())
1.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor

from whiteboxdl.viz.figures import new_figure, save_figure


class GridLike(Protocol):
    """What :func:`plot_grids` draws (see ``whiteboxdl.pullbacks.grids.Grid``)."""

    images: Tensor
    columns: list[int]
    differences: Tensor
    method: str


def minmax_per_cell(diff: Tensor) -> np.ndarray:
    """(..., C, H, W) differences -> (..., H, W, C) arrays in [0, 1], rescaled per cell."""
    flat = diff.detach().float().flatten(-3)
    lo, hi = flat.min(-1, keepdim=True).values, flat.max(-1, keepdim=True).values
    scaled = ((flat - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))).view_as(diff)
    return scaled.movedim(-3, -1).cpu().numpy()


def _show_image(ax, image: Tensor, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    arr = ((image.detach().float() - lo) / (hi - lo)).clamp(0, 1).movedim(0, -1).cpu().numpy()
    ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1)


def plot_grids(grids: Sequence[GridLike], path: str | Path,
               class_names: Optional[Sequence[str]] = None,
               labels: Optional[Sequence[int]] = None, bounds: tuple[float, float] = (-1.0, 1.0),
               title: str = "") -> Path:
    """Draw one or more grids side by side (same images and columns), each with an input column.

    Column titles name the target classes; row titles give the image's label when known; the
    diagonal (own class) is framed in green.
    """
    if not grids:
        raise ValueError("no grids to plot")
    rows, cols = grids[0].differences.shape[:2]
    n_cols = len(grids) * (cols + 1)
    fig, axes = new_figure(rows, n_cols, size=(1.6 * n_cols, 1.7 * rows + 0.6))
    axes = np.asarray(axes).reshape(rows, n_cols)

    def name(c: int) -> str:
        text = class_names[c] if class_names is not None and c < len(class_names) else str(c)
        return text if len(text) <= 16 else text[:15] + "…"

    for g_idx, grid in enumerate(grids):
        cells = minmax_per_cell(grid.differences)
        base = g_idx * (cols + 1)
        for r in range(rows):
            ax = axes[r, base]
            _show_image(ax, grid.images[r], bounds)
            if r == 0:
                ax.set_title(f"{grid.method}\ninput", fontsize=8, fontweight="bold")
            if labels is not None:
                ax.set_ylabel(name(int(labels[r])), fontsize=7)
            for c in range(cols):
                ax = axes[r, base + 1 + c]
                cell = cells[r, c]
                ax.imshow(cell[..., 0] if cell.shape[-1] == 1 else cell, cmap="gray",
                          vmin=0, vmax=1)
                if r == 0:
                    ax.set_title(f"→ {name(grid.columns[c])}", fontsize=7)
                if labels is not None and int(labels[r]) == grid.columns[c]:
                    for spine in ax.spines.values():
                        spine.set_edgecolor("green")
                        spine.set_linewidth(2.5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
