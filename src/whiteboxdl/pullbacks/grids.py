"""The paper's counterfactual grids: rows = images, columns = target classes.

Column ``j`` holds, for every image, the ascent towards class ``columns[j]`` (cell = perturbed −
clean). The columns are the images' own classes (so the diagonal is each image's own class,
off-diagonal cells are counterfactuals) plus extra random classes. :func:`explanation_figure`
computes the grids of excitation-pullback ascent and/or vanilla-gradient ascent and draws them
side by side (drawing: :mod:`whiteboxdl.viz.grids`).

Example
-------
>>> from whiteboxdl.pullbacks.grids import grid_columns
>>> grid_columns([3, 1, 3], num_classes=10, extra=1, seed=0)[:2]
[3, 1]
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from whiteboxdl.pullbacks.ascent import GradientAscent, PullbackAscent
from whiteboxdl.pullbacks.settings import PullbackSettings
from whiteboxdl.viz.grids import plot_grids

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


def top_classes(logits: Tensor, class_names: Optional[Sequence[str]] = None, k: int = 5
                ) -> list[list[tuple[int, str, float]]]:
    """Each row's ``k`` most probable classes as ``(index, name, softmax probability)``.

    Example
    -------
    >>> top_classes(torch.tensor([[0.0, 2.0, 1.0]]), ["a", "b", "c"], k=2)[0][0][:2]
    (1, 'b')
    """
    probs = logits.detach().double().softmax(-1)
    values, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return [[(int(i), class_names[int(i)] if class_names is not None and int(i) < len(class_names)
              else str(int(i)), float(v)) for v, i in zip(row_v, row_i)]
            for row_v, row_i in zip(values, indices)]


def format_top(top: Sequence[tuple[int, str, float]]) -> str:
    """``"282 tiger cat 61.2%, 281 tabby 20.1%, ..."``."""
    return ", ".join(f"{i} {name} {100 * p:.1f}%" for i, name, p in top)


@dataclass
class Grid:
    """Ascent differences ``(rows, cols, C, H, W)`` towards ``columns`` for ``images``."""

    images: Tensor
    columns: list[int]
    differences: Tensor
    method: str
    target_logits: Tensor = field(default_factory=lambda: torch.empty(0))


def compute_grid(model: Callable[[Tensor], Tensor], images: Tensor, columns: Sequence[int],
                 method: str = "pullback", progress: bool = True,
                 settings: Optional[PullbackSettings] = None, steps: int = 5,
                 alpha: float = 20.0, eps: Optional[float] = None, clip: Optional[str] = "every",
                 bounds: Optional[tuple[float, float]] = (-1.0, 1.0), **options: Any) -> Grid:
    """Run the ascent of every image towards every column class (one batch per column).

    ``method="pullback"``: :class:`PullbackAscent` with ``settings`` / ``options`` (pullback
    keywords); ``"gradient"``: :class:`GradientAscent` (the pullback settings do not apply).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    ascent: dict[str, Any] = dict(steps=steps, alpha=alpha, eps=eps, clip=clip, bounds=bounds)
    settings = PullbackSettings.of(settings, **options)
    explainer = GradientAscent(model, **ascent) if method == "gradient" else \
        PullbackAscent(model, settings=settings, **ascent)
    diffs, logits = [], []
    for c in tqdm(columns, desc=f"{method} ascent", disable=not progress, leave=False):
        result = explainer.ascend(images, target=int(c))
        diffs.append(result.difference)
        logits.append(result.target_logits)
    return Grid(images, [int(c) for c in columns], torch.stack(diffs, 1), method,
                torch.stack(logits, -1))


def explanation_figure(model: Callable[[Tensor], Tensor], images: Tensor, labels: Sequence[int],
                       path: str | Path, num_classes: int, method: str = "both",
                       columns: Optional[Sequence[int]] = None, extra: int = 1, seed: int = 0,
                       class_names: Optional[Sequence[str]] = None, progress: bool = True,
                       **ascent_kwargs: Any) -> tuple[Path, list[Grid]]:
    """The paper's figure for ``images`` (rows) and their ``labels``: pullback ascent, gradient
    ascent, or ``"both"`` side by side. ``ascent_kwargs`` go to :func:`compute_grid`. Returns the
    PNG path and the grids.

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
