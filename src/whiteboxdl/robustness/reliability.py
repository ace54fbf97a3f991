"""Reliability curve: can the model's confidence tell which attacked inputs it still gets right?

The positive event is "classified correctly under attack" (correct clean and attacked); the score
is the max softmax probability on the attacked input. Sweeping a threshold on the score from high
to low traces precision (of the accepted inputs, the fraction that are correct) against recall (of
the correct inputs, the fraction accepted). The curve ends where every input is accepted: recall
100%, precision = adversarial accuracy. That end point is what "precision at 100% recall" means
here, as in the paper: accepting everything is the only threshold that keeps every correct input
on any test set. For a recall ``r < 1`` the precision is read at the highest threshold whose
recall reaches ``r``.

Example
-------
>>> import torch
>>> from whiteboxdl.robustness.reliability import reliability_curve
>>> correct = torch.tensor([True, True, False, True])
>>> curve = reliability_curve(correct, torch.tensor([0.9, 0.8, 0.7, 0.6]))
>>> curve.precision_at(1.0) == curve.adversarial_accuracy == 0.75
True
>>> round(curve.precision_at(0.5), 3)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from whiteboxdl.viz.figures import new_figure, save_figure


@dataclass(frozen=True)
class ReliabilityCurve:
    """Precision and recall at each distinct threshold, from the highest down to accept-all."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    adversarial_accuracy: float

    def precision_at(self, recall: float) -> float:
        """Precision at the highest threshold reaching ``recall`` (1.0: accept every input)."""
        if not 0.0 < recall <= 1.0:
            raise ValueError(f"recall must be in (0, 1], got {recall}")
        if recall >= 1.0:
            return float(self.precision[-1])
        reached = np.flatnonzero(self.recall >= recall - 1e-12)
        return float(self.precision[reached[0]])


def _as_numpy(values, name: str) -> np.ndarray:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    return array


def reliability_curve(correct: torch.Tensor | np.ndarray,
                      scores: torch.Tensor | np.ndarray) -> ReliabilityCurve:
    """Precision-recall of ``correct`` (bool per input) ranked by ``scores`` (higher = trusted).

    Raises ``ValueError`` for mismatched lengths, non-finite scores, or no correct input at all
    (recall is undefined then).
    """
    correct = _as_numpy(correct, "correct").astype(bool)
    scores = _as_numpy(scores, "scores").astype(np.float64)
    if len(correct) != len(scores):
        raise ValueError(f"correct ({len(correct)}) and scores ({len(scores)}) differ in length")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain non-finite values")
    if not correct.any():
        raise ValueError("no input is correct under attack: recall is undefined")
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_correct = scores[order], correct[order]
    # the last index of each run of equal scores: a threshold accepts all ties together
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores) != 0), len(scores) - 1]
    true_pos = np.cumsum(sorted_correct)[ends]
    accepted = ends + 1
    precision = true_pos / accepted
    recall = true_pos / correct.sum()
    return ReliabilityCurve(thresholds=sorted_scores[ends], precision=precision, recall=recall,
                            adversarial_accuracy=float(correct.mean()))


def plot_reliability(curves: dict[str, ReliabilityCurve], path: str | Path,
                     mark_recall: float = 0.8, title: str = "Reliability under attack") -> Path:
    """Plot one or more curves (label -> curve) with the precision at ``mark_recall`` marked."""
    fig, ax = new_figure(size=(5.0, 4.0))
    for label, curve in curves.items():
        p_mark = curve.precision_at(mark_recall)
        ax.step(curve.recall, curve.precision, where="post",
                label=f"{label}: {100 * p_mark:.1f}% at {100 * mark_recall:.0f}% recall, "
                      f"{100 * curve.adversarial_accuracy:.1f}% at 100%")
        ax.plot([mark_recall], [p_mark], "o", color=ax.lines[-1].get_color())
    ax.axvline(mark_recall, color="0.7", lw=0.8, ls="--")
    ax.set_xlabel("recall (correct under attack, accepted)")
    ax.set_ylabel("precision (accepted and correct)")
    ax.set_xlim(0, 1.01)
    low = min(float(c.precision.min()) for c in curves.values())
    ax.set_ylim(max(0.0, low - 0.05), 1.005)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def curve_rows(curves: dict[str, ReliabilityCurve],
               recalls: Sequence[float] = (0.5, 0.8, 0.9, 1.0)) -> tuple[list[str], list[list]]:
    """A table of precision at a few recalls, one row per curve."""
    header = ["model"] + [f"precision at {100 * r:.0f}% recall" for r in recalls]
    rows = [[label] + [f"{100 * c.precision_at(r):.2f}%" for r in recalls]
            for label, c in curves.items()]
    return header, rows
