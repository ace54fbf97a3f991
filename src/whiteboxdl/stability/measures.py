"""How fast activation patterns (and weights) settle during training.

All measures work on a :class:`~whiteboxdl.stability.store.PatternStore`; a "gate" is one ReLU unit
on one probe sample (or one max-pool window on one sample). A gate has *settled* at snapshot ``s``
when its value at ``s`` and at every later snapshot equals its final value.

Example
-------
>>> import numpy as np
>>> from whiteboxdl.stability.patterns import LayerInfo, Snapshot
>>> from whiteboxdl.stability.store import PatternStore
>>> from whiteboxdl.stability.measures import flip_rates, settling
>>> store, layer = PatternStore(), LayerInfo("h", "relu", (2,))
>>> for step, p in [(0, [[1, 0]]), (10, [[0, 0]]), (20, [[0, 0]])]:
...     store.add(step, Snapshot([layer], {"h": np.array(p, bool)}))
>>> flip_rates(store)["h"].tolist()
[0.5, 0.0]
>>> settling(store)["h"].settle_step.tolist()
[[10, 0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from whiteboxdl.stability.store import PatternStore

OVERALL = "all ReLUs"


def _need_snapshots(store: PatternStore, at_least: int = 2) -> None:
    if len(store) < at_least:
        raise ValueError(f"the pattern store has {len(store)} snapshot(s); need >= {at_least} "
                         "(record with a smaller --every or train longer)")


def _differences(store: PatternStore, layer: str, a: int, b: int) -> int:
    """Number of gates of ``layer`` that differ between snapshots ``a`` and ``b``."""
    if store.layer(layer).kind == "relu":
        return int(np.bitwise_count(np.bitwise_xor(store.packed(a, layer),
                                                   store.packed(b, layer))).sum())
    return int(np.count_nonzero(store.pattern(a, layer) != store.pattern(b, layer)))


def _gates(store: PatternStore, layer: str) -> int:
    return store.n_probe * store.layer(layer).size


def _with_overall(store: PatternStore, counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Turn per-layer difference counts into fractions and add the ReLU-weighted overall one."""
    relus = [l.name for l in store.relu_layers]
    out = {name: c / _gates(store, name) for name, c in counts.items()}
    if relus:
        out[OVERALL] = sum(counts[n] for n in relus) / sum(_gates(store, n) for n in relus)
    return out


def flip_rates(store: PatternStore) -> dict[str, np.ndarray]:
    """Fraction of gates that changed between consecutive snapshots (length ``len(store) - 1``),
    per layer and over all ReLU gates (key :data:`OVERALL`)."""
    _need_snapshots(store)
    counts = {l.name: np.array([_differences(store, l.name, s - 1, s) for s in range(1, len(store))],
                               float) for l in store.layers}
    return _with_overall(store, counts)


def distance_to_final(store: PatternStore) -> dict[str, np.ndarray]:
    """Fraction of gates of each snapshot that differ from the final snapshot (Hamming / size)."""
    _need_snapshots(store, 1)
    last = len(store) - 1
    counts = {l.name: np.array([_differences(store, l.name, s, last) for s in range(len(store))],
                               float) for l in store.layers}
    return _with_overall(store, counts)


@dataclass
class Settling:
    """Per gate: snapshot index and step from which it never changes again, and its flip count."""

    settle_index: np.ndarray
    settle_step: np.ndarray
    flips: np.ndarray
    fraction_settled: np.ndarray  # per snapshot: fraction of gates settled there

    def step_at(self, steps: list[int], fraction: float) -> int:
        """First step at which at least ``fraction`` of the gates have settled."""
        return int(steps[int(np.argmax(self.fraction_settled >= fraction - 1e-12))])


def _settle_layer(store: PatternStore, layer: str) -> Settling:
    final = store.pattern(-1, layer)
    n = len(store)
    settle = np.full(final.shape, n - 1, dtype=np.int32)
    still = np.ones(final.shape, dtype=bool)
    flips = np.zeros(final.shape, dtype=np.int32)
    later = final
    for s in range(n - 2, -1, -1):
        current = store.pattern(s, layer)
        flips += current != later
        still &= current == final
        settle[still] = s
        later = current
    fraction = np.bincount(settle.ravel(), minlength=n).cumsum() / settle.size
    return Settling(settle, np.asarray(store.steps)[settle], flips, fraction)


def settling(store: PatternStore) -> dict[str, Settling]:
    """Settling of every layer's gates plus the overall ReLU one (key :data:`OVERALL`; its arrays
    are the flattened per-layer ones concatenated)."""
    _need_snapshots(store, 1)
    out = {l.name: _settle_layer(store, l.name) for l in store.layers}
    relus = [l.name for l in store.relu_layers]
    if relus:
        index = np.concatenate([out[n].settle_index.ravel() for n in relus])
        out[OVERALL] = Settling(
            index, np.asarray(store.steps)[index],
            np.concatenate([out[n].flips.ravel() for n in relus]),
            np.bincount(index, minlength=len(store)).cumsum() / index.size)
    return out


def _average_ranks(values: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return ((upper - counts + 1 + upper) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation with average ranks for ties (nan if either is constant)."""
    ra, rb = _average_ranks(np.ravel(a)), _average_ranks(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


@dataclass
class MarginRelation:
    """Settling versus the final model's pre-activation margin ``|z|/std``, in margin bins."""

    bin_edges: np.ndarray       # quantile edges of the margin
    mean_settle_step: np.ndarray  # per bin
    late_fraction: np.ndarray   # per bin: fraction of "late" gates (the last >= 10% to settle:
                                # not yet settled one snapshot before 90% of gates are)
    flips_per_gate: np.ndarray  # per bin
    spearman: float             # rank correlation margin vs settle step (negative = hypothesis)
    late_median_margin: float   # median margin of the late gates
    median_margin: float


def margin_relation(store: PatternStore, settled: dict[str, Settling] | None = None,
                    layer: str = OVERALL, bins: int = 10) -> MarginRelation:
    """Are the gates that settle last the weakly excited ones (small final ``|z|/std``)?"""
    if not store.margins:
        raise ValueError("the pattern store has no margins (recorded by the tracker at train end)")
    settled = settled or settling(store)
    names = [l.name for l in store.relu_layers] if layer == OVERALL else [layer]
    if store.layer(names[0]).kind != "relu":
        raise ValueError(f"margins exist for ReLU layers only, not {layer!r}")
    margin = np.concatenate([store.margins[n].astype(np.float32).ravel() for n in names])
    s = settled[layer]
    step = s.settle_step.ravel().astype(float)
    flips = s.flips.ravel().astype(float)
    index_90 = int(np.argmax(s.fraction_settled >= 0.9 - 1e-12))
    late = s.settle_index.ravel() >= index_90 if index_90 > 0 else np.zeros(step.shape, bool)
    edges = np.unique(np.quantile(margin, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, margin, side="right") - 1, 0, len(edges) - 2)
    k = len(edges) - 1
    count = np.maximum(np.bincount(which, minlength=k), 1)
    return MarginRelation(
        edges, np.bincount(which, step, k) / count, np.bincount(which, late, k) / count,
        np.bincount(which, flips, k) / count, spearman(margin, step),
        float(np.median(margin[late])) if late.any() else float("nan"), float(np.median(margin)))


# -- weights -------------------------------------------------------------------------------------
def load_checkpoints(run_dir: str | Path, steps: list[int]) -> dict[int, dict[str, torch.Tensor]]:
    """State dicts the tracker kept in ``run_dir/checkpoints`` for the given steps; missing ones
    are skipped, damaged ones reported, set aside and skipped."""
    from whiteboxdl.runfiles import DamagedFileError, load_torch, read_verified
    from whiteboxdl.stability.callback import checkpoint_path

    def check(path: Path, state: object) -> None:
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                  for v in state.values()):
            raise DamagedFileError(path, "not a state dict of tensors")

    out = {}
    for step in steps:
        path = checkpoint_path(run_dir, step)
        state = read_verified(path, load_torch, lambda st, path=path: check(path, st),
                              action="leaving this snapshot out of the weight measures")
        if state is not None:
            out[step] = state
    return out


def weight_distance_to_final(checkpoints: dict[int, dict[str, torch.Tensor]],
                             names: list[str] | None = None) -> dict[str, np.ndarray]:
    """``||W_s - W_T|| / ||W_T||`` per parameter and over all of them (key ``"all weights"``),
    for the checkpoints in step order; ``names`` defaults to the floating-point weights/biases."""
    if len(checkpoints) < 1:
        raise ValueError("no checkpoints to compare (the run kept none)")
    steps = sorted(checkpoints)
    final = checkpoints[steps[-1]]
    names = names or [k for k, v in final.items()
                      if v.is_floating_point() and not k.endswith(("running_mean", "running_var"))]
    out, total_diff, total_norm = {}, np.zeros(len(steps)), 0.0
    for name in names:
        ref = final[name].double()
        diff = np.array([float((checkpoints[s][name].double() - ref).norm()) for s in steps])
        out[name] = diff / max(float(ref.norm()), 1e-12)
        total_diff += diff ** 2
        total_norm += float(ref.norm()) ** 2
    out["all weights"] = np.sqrt(total_diff) / max(np.sqrt(total_norm), 1e-12)
    return out


def steps_to_reach(steps: list[int] | np.ndarray, distance: np.ndarray,
                   fraction: float) -> int:
    """First step from which ``distance`` stays below ``fraction`` of its initial value."""
    distance = np.asarray(distance, float)
    if distance[0] <= 0:
        return int(steps[0])
    above = np.nonzero(distance > fraction * distance[0])[0]
    last = int(above[-1]) + 1 if len(above) else 0
    return int(steps[min(last, len(steps) - 1)])
