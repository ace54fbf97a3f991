"""All stability measures of one recorded run, as a JSON-able dict (``stability.json``).

A run directory (written by :func:`whiteboxdl.stability.experiment.run_tracking` or any
``fit(..., callbacks=[StabilityTracker(..., out_dir=RUN)], out_dir=RUN, builder=...)`` plus
``probe.pt``) holds ``patterns.npz``, ``checkpoints/``, ``model.pt`` and ``probe.pt``.

Example
-------
>>> from whiteboxdl.stability.analysis import analyze
>>> results = analyze("runs/mnist-cnn")                 # doctest: +SKIP
>>> results["settling"]["all ReLUs"]["step_90"]         # doctest: +SKIP
300
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from whiteboxdl.models.checkpoint import load_model
from whiteboxdl.runfiles import (DamagedFileError, load_torch, read_json, read_verified, save_npz,
                                 write_json)
from whiteboxdl.stability import alignment as al
from whiteboxdl.stability import measures as ms
from whiteboxdl.stability.store import PatternStore

RESULTS_FILE = "stability.json"
#: Speed comparison: first step from which the distance to the final value stays below these
#: fractions of its initial value (gates: Hamming distance, weights: L2 distance).
SPEED_FRACTIONS = (0.5, 0.25, 0.1)


def load_probe(run_dir: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe inputs and labels saved with a run."""
    path = Path(run_dir) / "probe.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: is {run_dir} a `whiteboxdl stability run` "
                                "output directory?")
    probe = load_torch(path, fix="it cannot be rebuilt: record the run again with `whiteboxdl "
                                 "stability run ... --overwrite`")
    if not isinstance(probe, dict) or not {"x", "y"} <= set(probe) or len(probe["x"]) != len(
            probe["y"]):
        raise DamagedFileError(path, "not a probe record (x and y of equal length)")
    return probe["x"], probe["y"]


def model_factory(run_dir: str | Path):
    """The final model (``model.pt``, eval mode) and ``make(state_dict) -> model`` for checkpoints."""
    final = load_model(Path(run_dir) / "model.pt")

    def make(state: dict) -> nn.Module:
        model = copy.deepcopy(final)
        model.load_state_dict(state)
        return model.eval()

    return make, final


def _lists(d: dict) -> dict:
    return {k: np.asarray(v).tolist() for k, v in d.items()}


def pattern_measures(store: PatternStore) -> dict:
    """Flip rates, distance to final, settling steps and the margin relation."""
    settled = ms.settling(store)
    out = {
        "steps": store.steps,
        "layers": [{"name": l.name, "kind": l.kind, "shape": list(l.shape), "gates": l.size}
                   for l in store.layers],
        "flip_rate": _lists(ms.flip_rates(store)) if len(store) > 1 else {},
        "distance_to_final": _lists(ms.distance_to_final(store)),
        "settling": {name: {"fraction_settled": s.fraction_settled.tolist(),
                            "step_90": s.step_at(store.steps, 0.9),
                            "step_99": s.step_at(store.steps, 0.99),
                            "mean_flips": float(s.flips.mean()),
                            "never_flipped": float((s.flips == 0).mean())}
                     for name, s in settled.items()},
        "weight_change": store.weight_change,
    }
    if store.margins:
        margin = {}
        names = [ms.OVERALL] + [l.name for l in store.relu_layers]
        for name in names:
            rel = ms.margin_relation(store, settled, name)
            margin[name] = {"bin_edges": rel.bin_edges.tolist(),
                            "mean_settle_step": rel.mean_settle_step.tolist(),
                            "late_fraction": rel.late_fraction.tolist(),
                            "flips_per_gate": rel.flips_per_gate.tolist(),
                            "spearman": rel.spearman, "late_median_margin": rel.late_median_margin,
                            "median_margin": rel.median_margin}
        out["margin"] = margin
    return out


def weight_measures(run_dir: str | Path, store: PatternStore) -> dict:
    """Weights' distance to the final ones at each kept checkpoint, vs the gates' distance."""
    states = ms.load_checkpoints(run_dir, store.steps)
    if len(states) < 2:
        return {}
    steps = sorted(states)
    distance = ms.weight_distance_to_final(states)
    gate_distance = ms.distance_to_final(store)[ms.OVERALL]
    gate_at = np.array([gate_distance[store.step_index(s)] for s in steps])
    out = {"steps": steps, "distance_to_final": _lists(distance), "speed": {}}
    for frac in SPEED_FRACTIONS:
        out["speed"][str(frac)] = {
            "weights": ms.steps_to_reach(steps, distance["all weights"], frac),
            "gates": ms.steps_to_reach(steps, gate_at, frac)}
    return out


EXAMPLES_FILE = "examples.npz"


def save_examples(run_dir: str | Path, store: PatternStore, model: nn.Module, x: torch.Tensor,
                  y: torch.Tensor, n: int = 4) -> Path:
    """Attributions of the first ``n`` probe images for the examples figure (``examples.npz``):
    the final model's pullback and vanilla gradient, and frozen-gate gradients of the first,
    90%-settled and middle snapshots."""
    from whiteboxdl.stability.frozen import frozen_gate_gradient, input_gradient

    x, y = x[:n], y[:n]
    settled = ms.settling(store)[ms.OVERALL] if store.relu_layers else None
    at_90 = store.step_index(settled.step_at(store.steps, 0.9)) if settled else len(store) // 2
    picks = sorted({0, len(store) // 4, at_90})
    arrays = {"x": x.numpy(), "y": y.numpy(),
              "pullback": al.pullback(model, x, y).numpy(),
              "vanilla": input_gradient(model, x, y).numpy(),
              "frozen_steps": np.array([store.steps[i] for i in picks])}
    for i in picks:
        values = {l.name: store.pattern(i, l.name)[:n] for l in store.layers}
        arrays[f"frozen_{store.steps[i]}"] = frozen_gate_gradient(model, x, y, store.layers,
                                                                  values).numpy()
    return save_npz(Path(run_dir) / EXAMPLES_FILE, **arrays)


def alignment_measures(run_dir: str | Path, store: PatternStore, n_align: int = 256,
                       max_snapshots: int = 12, progress: bool = True) -> dict:
    """(a) path-kernel alignment, (b) temperature sweep, (c) consecutive checkpoints."""
    x, y = load_probe(run_dir)
    x, y = x[:n_align], y[:n_align]
    make, final = model_factory(run_dir)
    picks = np.unique(np.linspace(0, len(store) - 1, min(max_snapshots, len(store))).round()
                      .astype(int)).tolist()
    pk = al.path_kernel_alignment(final, store, x, y, picks, progress=progress)
    sweep = al.temperature_sweep(final, x, y)
    if x.dim() == 4:
        save_examples(run_dir, store, final, x, y)
    out = {"n_probe": len(x), "default_temperature": al.DEFAULT_TEMPERATURE,
           "path_kernel": {"steps": pk.steps, "vanilla": pk.vanilla,
                           "pullback": {str(t): v for t, v in pk.pullback.items()}},
           "temperature_sweep": {str(t): v for t, v in sweep.items()}}
    states = ms.load_checkpoints(run_dir, store.steps)
    if len(states) >= 2:
        kept = sorted(states)
        picks = sorted({kept[int(i)] for i in
                        np.linspace(0, len(kept) - 1, min(max_snapshots, len(kept))).round()})
        cc = al.checkpoint_consistency(make, {s: states[s] for s in picks}, x, y,
                                       progress=progress)
        out["checkpoints"] = {"steps": cc.steps, "pullback": cc.pullback, "vanilla": cc.vanilla}
    return out


def analyze(run_dir: str | Path, n_align: int = 256, max_snapshots: int = 12,
            alignment: bool = True, progress: bool = True) -> dict:
    """Compute every measure of a run and write ``stability.json``; returns the dict."""
    run_dir = Path(run_dir)
    store = PatternStore.load(run_dir / "patterns.npz")
    results = {"run": str(run_dir), "meta": store.meta,
               "patterns": pattern_measures(store),
               "weights": weight_measures(run_dir, store)}
    summary = read_verified(run_dir / "summary.json", read_json,
                            action="leaving the training numbers out")
    if isinstance(summary, dict):
        results["training"] = summary.get("final", {})
    if alignment:
        results["alignment"] = alignment_measures(run_dir, store, n_align, max_snapshots, progress)
    write_json(run_dir / RESULTS_FILE, results)
    return results
