"""Adversarial robustness: attacks (official AutoAttack, PGD, FGSM, ART Boundary), resumable
evaluation with per-sample records, reliability curves and the side-by-side report.

Public API::

    from whiteboxdl.robustness import attack, evaluate, reliability_curve
    x_adv = attack(model, x, y, eps=0.3, name="apgd-ce")            # inputs in [0, 1]
    result = evaluate(model, x, y, ["standard"], eps=0.3, out_dir="runs/r")   # resumable
    curve = reliability_curve(result.robust("worst"), result.worst_inputs().conf)
"""

from whiteboxdl.robustness.attacks import ATTACKS, attack, autoattack_cascade, available_attacks
from whiteboxdl.robustness.evaluate import RobustnessResult, evaluate
from whiteboxdl.robustness.padding import PaddedLogits
from whiteboxdl.robustness.reliability import ReliabilityCurve, plot_reliability, reliability_curve

__all__ = [
    "ATTACKS", "PaddedLogits", "ReliabilityCurve", "RobustnessResult", "attack",
    "autoattack_cascade", "available_attacks", "evaluate", "plot_reliability",
    "reliability_curve",
]
