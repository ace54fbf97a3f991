"""Alignment of excitation pullbacks with path-kernel gradients, vanilla gradients and each other.

Three measures on a fixed probe set, each a per-sample cosine similarity of input gradients of
the target logit:

(a) :func:`path_kernel_alignment` — the final model's excitation pullback (and, as reference, its
    vanilla gradient) against the gradient of the final model with gates frozen at an earlier
    snapshot's pattern, for every snapshot and temperature;
(b) :func:`temperature_sweep` — vanilla gradient vs pullback for a sweep of temperatures;
(c) :func:`checkpoint_consistency` — pullbacks (and vanilla gradients) of consecutive checkpoints.

Example
-------
>>> import torch
>>> from whiteboxdl.stability.alignment import cosine
>>> c = cosine(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[2.0, 0.0], [-1.0, -1.0]]))
>>> [round(v, 6) for v in c.tolist()]
[1.0, -1.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from whiteboxdl.stability.frozen import frozen_gate_gradient, input_gradient
from whiteboxdl.stability.store import PatternStore

#: Temperatures of the sweep (ReLU gate and max-pool routing together); 0.3 is the paper's.
TEMPERATURES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
DEFAULT_TEMPERATURE = 0.3


def cosine(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Per-sample cosine similarity of two batches (flattened; 0 where either is zero)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    denom = a.norm(dim=1) * b.norm(dim=1)
    cos = (a * b).sum(1) / denom.clamp_min(1e-300)
    return torch.where(denom > 0, cos, torch.zeros_like(cos)).numpy()


def pullback(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
             temperature: float = DEFAULT_TEMPERATURE, batch_size: int = 256) -> torch.Tensor:
    """Excitation pullback of the target logit (ReLU gate and max-pool routing at ``temperature``)."""
    from whiteboxdl.pullbacks import excitation_pullbacks

    return input_gradient(
        model, x, target,
        context=lambda: excitation_pullbacks(temperature=temperature,
                                             maxpool_temperature=temperature),
        batch_size=batch_size)


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "median": float(np.median(values)),
            "q25": float(np.quantile(values, 0.25)), "q75": float(np.quantile(values, 0.75))}


@dataclass
class PathKernelAlignment:
    """(a): ``pullback[T][s]`` = mean cos(pullback_T(final), frozen_s), ``vanilla[s]`` the same for
    the vanilla gradient; ``steps[s]`` the snapshot steps."""

    steps: list[int]
    temperatures: list[float]
    pullback: dict[float, list[dict[str, float]]]
    vanilla: list[dict[str, float]]


def path_kernel_alignment(model: nn.Module, store: PatternStore, x: torch.Tensor,
                          target: torch.Tensor, snapshots: Sequence[int] | None = None,
                          temperatures: Sequence[float] = TEMPERATURES,
                          progress: bool = True) -> PathKernelAlignment:
    """Cosine between the final model's pullbacks and its frozen-gate gradients per snapshot.

    ``x`` must be the first ``len(x)`` inputs of the store's probe set (the patterns' rows).
    """
    if len(x) > store.n_probe:
        raise ValueError(f"{len(x)} inputs but the store's probe set has {store.n_probe}")
    snapshots = list(range(len(store))) if snapshots is None else list(snapshots)
    pulls = {float(t): pullback(model, x, target, t) for t in temperatures}
    vanilla = input_gradient(model, x, target)
    out = PathKernelAlignment([store.steps[s] for s in snapshots], [float(t) for t in temperatures],
                              {float(t): [] for t in temperatures}, [])
    for s in tqdm(snapshots, desc="path-kernel gradients", disable=not progress, leave=False):
        values = {l.name: store.pattern(s, l.name)[:len(x)] for l in store.layers}
        frozen = frozen_gate_gradient(model, x, target, store.layers, values)
        out.vanilla.append(_summary(cosine(vanilla, frozen)))
        for t, p in pulls.items():
            out.pullback[t].append(_summary(cosine(p, frozen)))
    return out


def temperature_sweep(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                      temperatures: Sequence[float] = TEMPERATURES) -> dict[float, dict[str, float]]:
    """(b): cos(vanilla gradient, pullback at T) for each temperature."""
    vanilla = input_gradient(model, x, target)
    return {float(t): _summary(cosine(vanilla, pullback(model, x, target, t)))
            for t in temperatures}


@dataclass
class CheckpointConsistency:
    """(c): cos between consecutive checkpoints' pullbacks / vanilla gradients (at ``steps[k+1]``)."""

    steps: list[int]
    pullback: list[dict[str, float]]
    vanilla: list[dict[str, float]]


def checkpoint_consistency(make_model: Callable[[dict], nn.Module], states: dict[int, dict],
                           x: torch.Tensor, target: torch.Tensor,
                           temperature: float = DEFAULT_TEMPERATURE,
                           progress: bool = True) -> CheckpointConsistency:
    """Pullbacks of consecutive checkpoints (``make_model(state_dict)`` builds each one)."""
    steps = sorted(states)
    if len(steps) < 2:
        raise ValueError(f"need >= 2 checkpoints, got {len(steps)}")
    out = CheckpointConsistency(steps[1:], [], [])
    previous = None
    for step in tqdm(steps, desc="checkpoint pullbacks", disable=not progress, leave=False):
        model = make_model(states[step])
        current = (pullback(model, x, target, temperature), input_gradient(model, x, target))
        if previous is not None:
            out.pullback.append(_summary(cosine(previous[0], current[0])))
            out.vanilla.append(_summary(cosine(previous[1], current[1])))
        previous = current
    return out
