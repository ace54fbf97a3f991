"""The metrics the quality runner knows: one record each, with the extra inputs it needs.

A :class:`MetricSpec` says whether higher is better, how to compute the per-image scores, and which
extra inputs it needs beyond the model, the images, the targets and the attributions (Focus needs
``"mosaics"``). Extra inputs are built by the functions of :data:`EXTRA_INPUTS`, once per batch,
from a generator seeded by the batch and the input's name, so the runner needs no special case.

Example
-------
>>> from whiteboxdl.quality.metric_registry import all_metric_names, get_metric
>>> all_metric_names()[-1], get_metric("Focus").needs
('Focus', ('mosaics',))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from whiteboxdl.quality import metrics as M
from whiteboxdl.quality.focus import focus_score, make_mosaics

#: ``build(pool_x, pool_y, anchors, generator)`` of every extra input a metric may need.
EXTRA_INPUTS: dict[str, Callable[[Tensor, Tensor, Tensor, torch.Generator], Any]] = {
    "mosaics": make_mosaics,
}


@dataclass(frozen=True)
class MetricSpec:
    """A runner metric: ``compute(model, x, y, a, *, explain, domain, generator, num_classes,
    **extras, **options) -> scores (N,)``; ``needs`` names its extra inputs."""

    name: str
    higher_is_better: bool
    compute: Callable[..., Tensor]
    short: str
    needs: tuple[str, ...] = ()


def _infidelity(model, x, y, a, *, domain, generator, explain, num_classes, **options):
    return M.infidelity(model, x, y, a, domain=domain, generator=generator, **options)


def _faithfulness_correlation(model, x, y, a, *, domain, generator, explain, num_classes,
                              **options):
    return M.faithfulness_correlation(model, x, y, a, baseline=_baseline(domain), **options)


def _faithfulness_estimate(model, x, y, a, *, domain, generator, explain, num_classes,
                           **options):
    return M.faithfulness_estimate(model, x, y, a, baseline=_baseline(domain), **options)


def _monotonicity(model, x, y, a, *, domain, generator, explain, num_classes, **options):
    return M.monotonicity_correlation(model, x, y, a, domain=domain, generator=generator,
                                      **options)


def _max_sensitivity(model, x, y, a, *, domain, generator, explain, num_classes, **options):
    return M.max_sensitivity(explain, x, y, a, domain=domain, generator=generator, **options)


def _random_logit(model, x, y, a, *, domain, generator, explain, num_classes, **options):
    return M.random_logit(explain, x, y, a, num_classes=num_classes, generator=generator,
                          **options)


def _focus(model, x, y, a, *, domain, generator, explain, num_classes, mosaics, **options):
    if options:
        raise ValueError(f"Focus takes no options, got {sorted(options)}")
    mosaic, quadrants = mosaics
    return focus_score(mosaic, explain(mosaic, y).detach(), quadrants)


def _baseline(domain: tuple[float, float]) -> float:
    """The spec's baseline 0, which lies inside both [0, 1] and [−1, 1]."""
    lo, hi = domain
    return 0.0 if lo <= 0.0 <= hi else lo


METRICS: dict[str, MetricSpec] = {m.name: m for m in (
    MetricSpec("Infidelity", False, _infidelity, "Infid"),
    MetricSpec("FaithfulnessCorrelation", True, _faithfulness_correlation, "FC"),
    MetricSpec("FaithfulnessEstimate", True, _faithfulness_estimate, "FE"),
    MetricSpec("MonotonicityCorrelation", True, _monotonicity, "MC"),
    MetricSpec("MaxSensitivity", False, _max_sensitivity, "MaxSens"),
    MetricSpec("RandomLogit", False, _random_logit, "RandLogit"),
    MetricSpec("Focus", True, _focus, "Focus", needs=("mosaics",)),
)}


def get_metric(name: str) -> MetricSpec:
    """Look a metric up by name; ``ValueError`` listing the known ones otherwise."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(METRICS)}")
    return METRICS[name]


def all_metric_names() -> list[str]:
    """Names of every metric the runner knows (Focus last)."""
    return list(METRICS)
