"""The paper's counterfactual grids: rows = images, columns = target classes.

Column ``j`` shows, for every image, the ascent towards class ``columns[j]``: cell = perturbed −
clean, min–max rescaled per cell. The columns are the images' own classes (so the diagonal is each
image's own class, off-diagonal cells are counterfactuals) plus extra random classes. Grids of
excitation-pullback ascent and of vanilla-gradient ascent can be drawn side by side.

Example
-------
>>> import torch
>>> from whiteboxdl.viz.grids import grid_columns, minmax_per_cell
>>> grid_columns([3, 1, 3], num_classes=10, extra=1, seed=0)[:2]
[3, 1]
>>> float(minmax_per_cell(torch.tensor([[[[-2.0, 2.0]]]]))[0].max())
1.0
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from whiteboxdl.pullbacks.ascent import GradientAscent, PullbackAscent
from whiteboxdl.viz.figures import new_figure, save_figure

METHODS = ("pullback", "gradient")


def grid_columns(labels: Sequence[int], num_classes: int, extra: int = 1,
                 seed: int = 0) -> list[int]:
    """Target classes of the columns: the labels in order of appearance, then ``extra`` random
    classes that are none of them."""
    columns = list(dict.fromkeys(int(t) for t in labels))
    others = [c for c in range(num_classes) if c not in columns]
    if extra > len(others):
        raise ValueError(f"cannot add {extra} extra classes: only {len(others)} classes are left")
    return columns + random.Random(seed).sample(others, extra)


def minmax_per_cell(diff: Tensor) -> np.ndarray:
    """(..., C, H, W) differences -> (..., H, W, C) arrays in [0, 1], rescaled per cell."""
    flat = diff.detach().float().flatten(-3)
    lo, hi = flat.min(-1, keepdim=True).values, flat.max(-1, keepdim=True).values
    scaled = ((flat - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi))).view_as(diff)
    return scaled.movedim(-3, -1).cpu().numpy()


@dataclass
class Grid:
    """Ascent differences ``(rows, cols, C, H, W)`` towards ``columns`` for ``images``."""

    images: Tensor
    columns: list[int]
    differences: Tensor
    method: str
    target_logits: Tensor = field(default_factory=lambda: torch.empty(0))


def compute_grid(model: Callable[[Tensor], Tensor], images: Tensor, columns: Sequence[int],
                 method: str = "pullback", progress: bool = True, **ascent_kwargs) -> Grid:
    """Run the ascent of every image towards every column class (one batch per column).

    ``ascent_kwargs`` go to :class:`PullbackAscent` (or :class:`GradientAscent` for
    ``method="gradient"``, which ignores the temperature settings).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "gradient":
        ascent_kwargs = {k: v for k, v in ascent_kwargs.items()
                         if k in ("steps", "alpha", "eps", "clip", "bounds")}
        explainer: PullbackAscent = GradientAscent(model, **ascent_kwargs)
    else:
        explainer = PullbackAscent(model, **ascent_kwargs)
    diffs, logits = [], []
    for c in tqdm(columns, desc=f"{method} ascent", disable=not progress, leave=False):
        result = explainer.ascend(images, target=int(c))
        diffs.append(result.difference)
        logits.append(result.target_logits)
    return Grid(images, [int(c) for c in columns], torch.stack(diffs, 1), method,
                torch.stack(logits, -1))


def _show_image(ax, image: Tensor, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    arr = ((image.detach().float() - lo) / (hi - lo)).clamp(0, 1).movedim(0, -1).cpu().numpy()
    ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1)


def plot_grids(grids: Sequence[Grid], path: str | Path, class_names: Optional[Sequence[str]] = None,
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


def explanation_figure(model: Callable[[Tensor], Tensor], images: Tensor, labels: Sequence[int],
                       path: str | Path, num_classes: int, method: str = "both",
                       columns: Optional[Sequence[int]] = None, extra: int = 1, seed: int = 0,
                       class_names: Optional[Sequence[str]] = None, progress: bool = True,
                       **ascent_kwargs) -> tuple[Path, list[Grid]]:
    """The paper's figure for ``images`` (rows) and their ``labels``: pullback ascent, gradient
    ascent, or ``"both"`` side by side. Returns the PNG path and the grids.

    Example
    -------
    >>> import torch, tempfile
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    >>> p, grids = explanation_figure(net, torch.zeros(2, 3, 2, 2), [0, 1],
    ...                               tempfile.mktemp(suffix=".png"), num_classes=3, steps=1,
    ...                               progress=False)
    >>> grids[0].differences.shape
    torch.Size([2, 3, 3, 2, 2])
    """
    methods = METHODS if method == "both" else (method,)
    if any(m not in METHODS for m in methods):
        raise ValueError(f"method must be 'pullback', 'gradient' or 'both', got {method!r}")
    if len(labels) != images.shape[0]:
        raise ValueError(f"got {len(labels)} labels for {images.shape[0]} images")
    columns = list(columns) if columns is not None else grid_columns(labels, num_classes, extra,
                                                                      seed)
    grids = [compute_grid(model, images, columns, m, progress, **ascent_kwargs) for m in methods]
    bounds = ascent_kwargs.get("bounds") or (-1.0, 1.0)
    steps, alpha = ascent_kwargs.get("steps", 5), ascent_kwargs.get("alpha", 20.0)
    title = (f"Ascent towards each column's class (K={steps}, α={alpha}, "
             f"ε={ascent_kwargs.get('eps')}); cell = perturbed − clean, min–max per cell")
    return plot_grids(grids, path, class_names, labels, bounds, title), grids
