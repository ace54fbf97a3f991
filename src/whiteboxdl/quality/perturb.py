"""Perturbed copies of images and their logits, built a chunk at a time.

The quality metrics query a model on many perturbed copies of each image (Faithfulness
Correlation 100, Monotonicity 120, Infidelity 80 at ImageNet scale). :func:`perturbed_logits`
builds those copies lazily, one forward batch of at most ``chunk`` images at a time, so memory
stays at one batch however many perturbations a metric draws (the copies of 224² images are
0.6 MB each). The perturbation builders here follow Quantus 0.6 where the paper's protocol uses
it: random feature subsets, steps of sorted features, the block grid, per-image baselines.

Example
-------
>>> import torch
>>> from whiteboxdl.quality.perturb import perturbed_logits
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
>>> x, y = torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 0])
>>> make = lambda i, s0, s1: x[i].expand(s1 - s0, 1, 2, 2)      # 5 unperturbed copies each
>>> perturbed_logits(model, y, 3, 5, make, chunk=4).shape
torch.Size([3, 5])
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

#: ``make(i, s0, s1) -> (s1 - s0, C, H, W)``: perturbations s0..s1-1 of image i.
MakeFn = Callable[[int, int, int], Tensor]
#: Floats per forward batch when ``chunk`` is not given (2048 MNIST images, 55 of 3×224²).
CHUNK_FLOATS = 2 ** 23
MAX_CHUNK = 2048
#: Baselines by name, computed per image over all its values (Quantus's batched baselines).
BASELINES = ("black", "white", "mean")


def auto_chunk(x: Tensor) -> int:
    """Images per forward batch for inputs like ``x``: about 32 MB of input floats."""
    return max(1, min(MAX_CHUNK, CHUNK_FLOATS // max(1, x[0].numel())))


@torch.no_grad()
def target_logits(model: nn.Module | Callable[[Tensor], Tensor], x: Tensor, y: Tensor,
                  chunk: int | None = None, softmax: bool = False) -> Tensor:
    """Logits ``model(x)[i, y[i]]`` (or softmax probabilities) as float64, ``chunk`` at a time."""
    chunk = chunk or auto_chunk(x)
    out = []
    for i in range(0, x.shape[0], chunk):
        z = model(x[i:i + chunk])
        if softmax:
            z = torch.softmax(z, dim=1)
        out.append(z.double().gather(1, y[i:i + chunk, None])[:, 0])
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def perturbed_logits(model: nn.Module | Callable[[Tensor], Tensor], y: Tensor, n: int, s: int,
                     make: MakeFn, chunk: int, softmax: bool = False) -> Tensor:
    """Target logits (N, S) of ``s`` perturbations of each of ``n`` images, built by ``make``
    and forwarded in batches of at most ``chunk`` images (image-major order)."""
    out = torch.empty(n * s, dtype=torch.float64)
    pending: list[Tensor] = []
    filled = done = 0

    def flush() -> None:
        nonlocal done
        if not pending:
            return
        batch = torch.cat(pending)
        k = batch.shape[0]
        flat = torch.arange(done, done + k)
        out[done:done + k] = target_logits(model, batch, y[flat // s], chunk=k, softmax=softmax)
        done += k
        pending.clear()

    for i in range(n):
        s0 = 0
        while s0 < s:
            s1 = min(s, s0 + chunk - filled)
            pending.append(make(i, s0, s1))
            filled += s1 - s0
            s0 = s1
            if filled == chunk:
                flush()
                filled = 0
    flush()
    return out.view(n, s)


# ----------------------------------------------------------------------------- baselines
def baseline_values(x: Tensor, baseline: float | str | Tensor) -> Tensor:
    """One replacement value per image (N,) in float64: a number, or ``"black"`` (the image's
    minimum over all its values, as Quantus's batched baselines), ``"white"`` (maximum),
    ``"mean"``; a tensor of N values passes through.

    Example
    -------
    >>> import torch
    >>> baseline_values(torch.tensor([[[[-1.0, 0.5]]], [[[0.2, 0.3]]]]), "black").tolist()
    [-1.0, 0.20000000298023224]
    """
    n = x.shape[0]
    if isinstance(baseline, str):
        flat = x.reshape(n, -1).double()
        if baseline == "black":
            return flat.amin(1)
        if baseline == "white":
            return flat.amax(1)
        if baseline == "mean":
            return flat.mean(1)
        raise ValueError(f"unknown baseline {baseline!r}; use a number or one of {BASELINES}")
    if isinstance(baseline, Tensor):
        if baseline.shape != (n,):
            raise ValueError(f"a baseline tensor needs one value per image ({n},), got "
                             f"{tuple(baseline.shape)}")
        return baseline.double()
    return torch.full((n,), float(baseline), dtype=torch.float64)


# ----------------------------------------------------------------------------- masks
def patch_grid_masks(shape: Sequence[int], patch_size: int) -> Tensor:
    """Boolean masks (P, C·H·W) of the non-overlapping ``patch_size`` grid over an image (C, H, W).

    Patches at the right/bottom border are cropped when the side is not a multiple of the size.
    """
    c, h, w = shape
    if patch_size < 1 or patch_size > max(h, w):
        raise ValueError(f"patch_size must be in [1, {max(h, w)}], got {patch_size}")
    masks = []
    for top in range(0, h, patch_size):
        for left in range(0, w, patch_size):
            m = torch.zeros(c, h, w, dtype=torch.bool)
            m[:, top:top + patch_size, left:left + patch_size] = True
            masks.append(m.flatten())
    return torch.stack(masks)


def random_subset_masks(n: int, d: int, runs: int, subset_size: int,
                        generator: torch.Generator | None = None) -> Tensor:
    """Masks (N, runs, D) of ``subset_size`` features drawn without replacement per image and
    run (Quantus FaithfulnessCorrelation's subsets, drawn with torch)."""
    if not 1 <= subset_size <= d:
        raise ValueError(f"subset_size must be in [1, {d}], got {subset_size}")
    masks = torch.zeros(n, runs, d, dtype=torch.bool)
    for r in range(runs):
        for i in range(n):
            masks[i, r, torch.randperm(d, generator=generator)[:subset_size]] = True
    return masks


def step_masks(order: np.ndarray, features_in_step: int) -> Tensor:
    """Masks (N, steps, D) selecting consecutive chunks of ``order`` (N, D), the last one shorter
    when D is not a multiple of ``features_in_step``."""
    n, d = order.shape
    if features_in_step < 1:
        raise ValueError(f"features_in_step must be >= 1, got {features_in_step}")
    steps = math.ceil(d / features_in_step)
    masks = torch.zeros(n, steps, d, dtype=torch.bool)
    step_of = torch.arange(d) // features_in_step
    masks[torch.arange(n)[:, None], step_of[None, :].expand(n, d),
          torch.from_numpy(order.copy())] = True
    return masks


def replace_masked(x: Tensor, masks: Tensor, values: Tensor) -> MakeFn:
    """``make`` for :func:`perturbed_logits`: image i with ``masks[i, s]`` (N, S, D) set to
    ``values`` (N,) per image or (N, S) per perturbation."""
    n, d = x.shape[0], x[0].numel()
    flat = x.reshape(n, d)

    def make(i: int, s0: int, s1: int) -> Tensor:
        v = values[i] if values.ndim == 1 else values[i, s0:s1, None]
        xp = torch.where(masks[i, s0:s1], v.to(x.dtype), flat[i])
        return xp.view(s1 - s0, *x.shape[1:])

    return make


# ----------------------------------------------------------------------------- block grid
def block_ids(h: int, w: int, patch_size: int) -> Tensor:
    """Block number (H, W) of each pixel in the ``patch_size`` grid, row-major (Quantus's
    ``get_block_indices`` order; each block spans every channel).

    Example
    -------
    >>> block_ids(4, 4, 2)
    tensor([[0, 0, 1, 1],
            [0, 0, 1, 1],
            [2, 2, 3, 3],
            [2, 2, 3, 3]])
    """
    if patch_size < 1 or h % patch_size or w % patch_size:
        raise ValueError(f"block size {patch_size} must divide the image sides {h}×{w} (Quantus "
                         "pads other sizes and then indexes the unpadded image, which misplaces "
                         "the blocks; pick a divisor)")
    rows = torch.arange(h) // patch_size
    cols = torch.arange(w) // patch_size
    return rows[:, None] * (w // patch_size) + cols[None, :]


def block_sums(t: Tensor, ids: Tensor) -> Tensor:
    """Sums (N, B) of ``t`` (N, C, H, W) over each block of ``ids`` (H, W), in float64."""
    n = t.shape[0]
    b = int(ids.max()) + 1
    flat = t.double().sum(1).reshape(n, -1)
    return torch.zeros(n, b, dtype=torch.float64).index_add_(1, ids.flatten(), flat)


def cumulative_blocks(x: Tensor, ids: Tensor, values: Tensor) -> MakeFn:
    """``make``: perturbation k of image i has blocks 0..k replaced, block b by ``values[i, b]``
    (N, B) — Quantus Infidelity's cumulative block replacement within one repeat."""
    lookup = values.to(x.dtype)

    def make(i: int, s0: int, s1: int) -> Tensor:
        fill = lookup[i][ids]                                     # (H, W) value of each block
        k = torch.arange(s0, s1)[:, None, None]
        keep = (ids[None] > k)[:, None]                           # (S, 1, H, W)
        return torch.where(keep, x[i][None], fill[None, None])

    return make
