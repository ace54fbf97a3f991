"""The metrics the quality runner knows: one record each, with the extra inputs it needs.

A :class:`MetricSpec` says whether higher is better, how to compute the per-image scores, which
extra inputs it needs beyond the model, the images, the targets and the attributions (Focus needs
``"mosaics"``), and, for metrics whose perturbations do not depend on the attribution, a
``shared`` stage that draws them and runs the model on them once per batch for every explainer.
Extra inputs are built by the functions of :data:`EXTRA_INPUTS`, once per batch, from a generator
seeded by the batch and the input's name, so the runner needs no special case.

Options select a metric's protocol: e.g. Infidelity ``scheme="blocks"`` (the paper's code: the
cumulative block grid) or ``"patches"`` (one random noise patch, the default), Faithfulness
Correlation ``subset_size`` (random subsets) and ``baseline="black"``, Random Logit
``similarity="pearson"``, Focus ``tiles``/``layout``/``relevance``. :mod:`whiteboxdl.quality.protocols`
names the paper's set.

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

#: ``build(pool_x, pool_y, anchors, generator, **options)`` of every extra input a metric may need.
EXTRA_INPUTS: dict[str, Callable[..., Any]] = {
    "mosaics": make_mosaics,
}


@dataclass(frozen=True)
class MetricSpec:
    """A runner metric: ``compute(model, x, y, a, *, explain, domain, generator, num_classes,
    shared, **extras, **options) -> scores (N,)``; ``needs`` names its extra inputs and
    ``extra_options`` the options that go to their builders instead; ``shared(model, x, y, *,
    domain, generator, **options)`` (if any) computes the explainer-independent part once."""

    name: str
    higher_is_better: bool
    compute: Callable[..., Tensor]
    short: str
    needs: tuple[str, ...] = ()
    shared: Callable[..., Any] | None = None
    extra_options: tuple[str, ...] = ()

    def split_options(self, options: dict) -> tuple[dict, dict]:
        """``(options for the extra-input builders, options for the metric)``."""
        return ({k: v for k, v in options.items() if k in self.extra_options},
                {k: v for k, v in options.items() if k not in self.extra_options})


# ----------------------------------------------------------------------------- infidelity
def _infidelity_shared(model, x, y, *, domain, generator, scheme: str = "patches",
                       optimal_scaling: bool = True, **options):
    if scheme == "blocks":
        return M.prepare_infidelity_blocks(model, x, y, generator=generator, **options)
    if scheme != "patches":
        raise ValueError(f"Infidelity scheme must be 'patches' or 'blocks', got {scheme!r}")
    if not optimal_scaling:
        raise ValueError("Infidelity scheme 'patches' always uses optimal scaling")
    return M.prepare_infidelity(model, x, y, domain=domain, generator=generator, **options)


def _infidelity(model, x, y, a, *, shared, scheme: str = "patches", optimal_scaling: bool = True,
                **_):
    if scheme == "blocks":
        return M.infidelity_blocks(model, x, y, a, prepared=shared,
                                   optimal_scaling=optimal_scaling)
    return M.infidelity(model, x, y, a, prepared=shared)


# ----------------------------------------------------------------------------- faithfulness
def _baseline(domain: tuple[float, float]) -> float:
    """The spec's baseline 0, which lies inside both [0, 1] and [−1, 1]."""
    lo, hi = domain
    return 0.0 if lo <= 0.0 <= hi else lo


def _fc_shared(model, x, y, *, domain, generator, baseline=None, **options):
    return M.prepare_faithfulness_correlation(
        model, x, y, baseline=_baseline(domain) if baseline is None else baseline,
        generator=generator, **options)


def _faithfulness_correlation(model, x, y, a, *, shared, **_):
    return M.faithfulness_correlation(model, x, y, a, prepared=shared)


def _faithfulness_estimate(model, x, y, a, *, domain, baseline=None, **options):
    return M.faithfulness_estimate(model, x, y, a,
                                   baseline=_baseline(domain) if baseline is None else baseline,
                                   **_own(options))


def _monotonicity(model, x, y, a, *, domain, generator, uniform=None, **options):
    """``uniform``: the replacement values' range (default: the inputs' domain; Quantus's own
    default, which the paper keeps, is [0, 1])."""
    return M.monotonicity_correlation(model, x, y, a, generator=generator,
                                      domain=tuple(uniform) if uniform is not None else domain,
                                      **_own(options))


# ----------------------------------------------------------------------------- the others
def _max_sensitivity(model, x, y, a, *, domain, generator, explain, **options):
    return M.max_sensitivity(explain, x, y, a, domain=domain, generator=generator,
                             **_own(options))


def _random_logit(model, x, y, a, *, generator, explain, num_classes, **options):
    return M.random_logit(explain, x, y, a, num_classes=num_classes, generator=generator,
                          **_own(options))


def _focus(model, x, y, a, *, explain, mosaics, relevance: str = "input_x_attribution",
           **options):
    if _own(options):
        raise ValueError(f"Focus takes the options tiles, layout and relevance, got "
                         f"{sorted(_own(options))}")
    mosaic, quadrants = mosaics
    return focus_score(mosaic, explain(mosaic, y).detach(), quadrants, relevance=relevance)


#: Keywords every ``compute`` receives from the runner (not options of the metric).
RUNNER_KEYWORDS = ("explain", "domain", "generator", "num_classes", "shared")


def _own(options: dict) -> dict:
    """The metric's own options: ``options`` minus the runner's keywords."""
    return {k: v for k, v in options.items() if k not in RUNNER_KEYWORDS}


METRICS: dict[str, MetricSpec] = {m.name: m for m in (
    MetricSpec("Infidelity", False, _infidelity, "Infid", shared=_infidelity_shared),
    MetricSpec("FaithfulnessCorrelation", True, _faithfulness_correlation, "FC",
               shared=_fc_shared),
    MetricSpec("FaithfulnessEstimate", True, _faithfulness_estimate, "FE"),
    MetricSpec("MonotonicityCorrelation", True, _monotonicity, "MC"),
    MetricSpec("MaxSensitivity", False, _max_sensitivity, "MaxSens"),
    MetricSpec("RandomLogit", False, _random_logit, "RandLogit"),
    MetricSpec("Focus", True, _focus, "Focus", needs=("mosaics",),
               extra_options=("tiles", "layout")),
)}


def get_metric(name: str) -> MetricSpec:
    """Look a metric up by name; ``ValueError`` listing the known ones otherwise."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(METRICS)}")
    return METRICS[name]


def all_metric_names() -> list[str]:
    """Names of every metric the runner knows (Focus last)."""
    return list(METRICS)


def compute_metric(spec: MetricSpec, model, x: Tensor, y: Tensor, a: Tensor, *, options: dict,
                   shared: Any = None, extras: dict | None = None, **runner) -> Tensor:
    """Scores of ``spec`` for attributions ``a``: the runner's keywords (``explain``, ``domain``,
    ``generator``, ``num_classes``), the shared stage's result and the extra inputs."""
    _, own = spec.split_options(options)
    return spec.compute(model, x, y, a, shared=shared, **(extras or {}), **runner, **own)


def compute_shared(spec: MetricSpec, model, x: Tensor, y: Tensor, *, options: dict,
                   domain: tuple[float, float], generator: torch.Generator) -> Any:
    """The explainer-independent stage of ``spec`` for a batch (None if it has none)."""
    if spec.shared is None:
        return None
    _, own = spec.split_options(options)
    return spec.shared(model, x, y, domain=domain, generator=generator, **own)
