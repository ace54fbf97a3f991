"""Named evaluation protocols, and variants of explainers and metrics.

A :class:`Protocol` fixes which explainers and metrics a run scores and every hyper-parameter of
both. ``default`` is the registries' defaults (the spec's values scaled to the input size, as
the MNIST runs use). ``paper`` is the paper's public code (``314-Foundation/SemanticPullbacks``:
``lib/evaluator.py``, ``lib/metrics.py``, ``lib/attributions.py``, ``evaluate_focus.py``;
Quantus 0.6, inputs in [−1, 1], 3×224² images), every value checked against that code and the
installed Quantus source (the record is in ``BENCHMARKS.md``):

============================ =============================================================
Infidelity                   Quantus block grid of 56² (every stored version; the spec says
                             112 and 56: the variant ``Infidelity-112+56``), 5 repeats,
                             blocks replaced cumulatively by one uniform value in [−1, 1]
                             per image and block, optimal scaling β pooled over all 80
FaithfulnessCorrelation      100 random subsets of 12,544 of the 150,528 values, baseline
                             "black" (each image's minimum), Pearson, signed maps
FaithfulnessEstimate         steps of 3,136 values, baseline "black", signed maps
MonotonicityCorrelation      steps of 12,544, 10 samples, uniform values in Quantus's
                             default [0, 1], ``|a|``, Spearman, softmax
MaxSensitivity               10 draws of uniform noise in [−0.02, 0.02]
RandomLogit                  Pearson correlation (not Quantus's default SSIM), 1000 classes
Focus                        448² mosaics of full 224² tiles: the image twice and two images
                             of random other classes; relevance = the attribution itself
============================ =============================================================

Explainers: SoftPullback (one raw pullback), PullbackAscent and GradientAscent (K = 5 as the
spec's table, α = 20, L2-normalised steps, clamped after the last step), SmoothGrad and
SmoothPullback (50 samples, σ = 0.15), FusionGrad (10 × 10, σ_w = σ_x = 0.5), and through
``quantus.explain``: Gradient, IntegratedGradients (10 steps, Riemann trapezoid, zero
baseline), GradientShap (zero baseline, Captum's 5 samples), DeepLift (zero baseline) and
GuidedGradCam. ``quantus.explain`` sums Captum's maps over channels and so does FusionGrad,
while the pullback explainers and SmoothGrad return one value per channel; ``paper`` keeps
that asymmetry, ``paper-per-channel`` gives every explainer per-channel maps.

Variants: ``{"PullbackAscent K=1": {"of": "PullbackAscent", "steps": 1}}`` names its base's
configuration (the protocol's options for the base) with changes; variants of metrics work the
same way.

Example
-------
>>> from whiteboxdl.quality.protocols import get_protocol, resolve
>>> paper = get_protocol("paper")
>>> paper.metric_options["FaithfulnessCorrelation"]["subset_size"]
12544
>>> resolve("PullbackAscent K=1", paper.options,
...         {"PullbackAscent K=1": {"of": "PullbackAscent", "steps": 1}})
('PullbackAscent', {'steps': 1, 'alpha': 20.0, 'clip': 'last'})
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Protocol:
    """Explainers, metrics and their options (``None`` = every registered one, defaults)."""

    name: str
    description: str
    explainers: tuple[str, ...] | None = None
    metrics: tuple[str, ...] | None = None
    options: dict[str, dict] = field(default_factory=dict)
    metric_options: dict[str, dict] = field(default_factory=dict)
    variants: dict[str, dict] = field(default_factory=dict)
    metric_variants: dict[str, dict] = field(default_factory=dict)


#: The paper table's explainers (and ours: SmoothPullback).
PAPER_EXPLAINERS = ("SoftPullback", "PullbackAscent", "SmoothPullback", "Gradient",
                    "GradientAscent", "SmoothGrad", "FusionGrad", "IntegratedGradients",
                    "GradientShap", "DeepLift", "GuidedGradCam")
#: Those whose maps the paper's code sums over channels (``quantus.explain``, its FusionGrad).
PAPER_SUMMED = ("Gradient", "FusionGrad", "IntegratedGradients", "GradientShap", "DeepLift",
                "GuidedGradCam")
_ASCENT = {"steps": 5, "alpha": 20.0, "clip": "last"}
_PAPER_OPTIONS: dict[str, dict] = {
    "PullbackAscent": dict(_ASCENT),
    "GradientAscent": dict(_ASCENT),
    "SmoothPullback": {"samples": 50, "sigma": 0.15},
    "SmoothGrad": {"samples": 50, "sigma": 0.15},
    "FusionGrad": {"weight_samples": 10, "input_samples": 10, "weight_std": 0.5,
                   "input_std": 0.5},
    "IntegratedGradients": {"steps": 10, "method": "riemann_trapezoid", "baseline": 0.0},
    "GradientShap": {"samples": 5, "noise_baselines": 0, "baseline": 0.0},
    "DeepLift": {"baseline": 0.0},
}
_PAPER_METRICS = ("Infidelity", "Infidelity-112+56", "FaithfulnessCorrelation",
                  "FaithfulnessEstimate", "MonotonicityCorrelation", "MaxSensitivity",
                  "RandomLogit", "Focus")
_PAPER_METRIC_OPTIONS: dict[str, dict] = {
    "Infidelity": {"scheme": "blocks", "patch_sizes": [56], "repeats": 5,
                   "uniform": [-1.0, 1.0]},
    "FaithfulnessCorrelation": {"subset_size": 12544, "nr_runs": 100, "baseline": "black"},
    "FaithfulnessEstimate": {"features_in_step": 3136, "baseline": "black"},
    "MonotonicityCorrelation": {"features_in_step": 12544, "nr_samples": 10,
                                "uniform": [0.0, 1.0]},
    "MaxSensitivity": {"nr_samples": 10, "radius": 0.02},
    "RandomLogit": {"similarity": "pearson"},
    "Focus": {"tiles": "full", "layout": "same-image", "relevance": "attribution"},
}
_PAPER_METRIC_VARIANTS = {"Infidelity-112+56": {"of": "Infidelity", "patch_sizes": [112, 56]}}


def _paper(reduce: tuple[str, ...]) -> dict[str, dict]:
    options = copy.deepcopy(_PAPER_OPTIONS)
    for name in reduce:
        options.setdefault(name, {})["reduce_channels"] = True
    return options


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("default", "the registries' defaults: the spec's values scaled to the input size"),
    Protocol("paper", "the paper's public code (Quantus 0.6 settings, ImageNet 224² in [−1, 1]); "
                      "baseline maps summed over channels as quantus.explain does",
             PAPER_EXPLAINERS, _PAPER_METRICS, _paper(PAPER_SUMMED),
             copy.deepcopy(_PAPER_METRIC_OPTIONS), {}, copy.deepcopy(_PAPER_METRIC_VARIANTS)),
    Protocol("paper-per-channel", "the paper's protocol with every explainer's map per channel",
             PAPER_EXPLAINERS, _PAPER_METRICS, _paper(()),
             copy.deepcopy(_PAPER_METRIC_OPTIONS), {}, copy.deepcopy(_PAPER_METRIC_VARIANTS)),
)}


#: The image side the paper's numbers are for.
PAPER_SIDE = 224
#: Feature counts of the paper's metric options (scaled by area) and patch sizes (by side).
_AREA_KEYS = ("subset_size", "features_in_step")
_SIDE_KEYS = ("patch_sizes",)


def scale_metric_options(options: dict[str, dict], side: int) -> dict[str, dict]:
    """The paper's metric options for ``side``² images instead of 224²: feature counts scaled
    by the area (12,544 = 1/12 of 3·224², 3,136 = 1/48), block sizes by the side (56 → side/4,
    112 → side/2); a block size that does not divide ``side`` is refused.

    Example
    -------
    >>> o = scale_metric_options(get_protocol("paper").metric_options, 240)
    >>> o["Infidelity"]["patch_sizes"], o["FaithfulnessEstimate"]["features_in_step"]
    ([60], 3600)
    """
    out = copy.deepcopy(options)
    if side == PAPER_SIDE:
        return out
    for name, opts in out.items():
        for key in _AREA_KEYS:
            if key in opts:
                opts[key] = round(opts[key] * side * side / PAPER_SIDE ** 2)
        for key in _SIDE_KEYS:
            if key in opts:
                scaled = [p * side / PAPER_SIDE for p in opts[key]]
                if any(abs(p - round(p)) > 1e-9 or side % round(p) for p in scaled):
                    raise ValueError(f"{name}: the block sizes {opts[key]} scaled to {side}² "
                                     f"images ({scaled}) do not divide the side")
                opts[key] = [round(p) for p in scaled]
    return out


def get_protocol(name: str) -> Protocol:
    """The protocol ``name``; ``ValueError`` listing the known ones otherwise."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def resolve(name: str, options: dict[str, dict], variants: dict[str, dict]
            ) -> tuple[str, dict]:
    """``(registered name, options)`` of an explainer or metric ``name``: a variant is its base
    (``"of"``) with the base's ``options`` and the variant's changes on top."""
    if name in variants:
        spec = dict(variants[name])
        base = spec.pop("of", None)
        if not isinstance(base, str):
            raise ValueError(f"variant {name!r} must name its base with \"of\", got {base!r}")
        if base in variants:
            raise ValueError(f"variant {name!r} is based on another variant ({base!r}); base it "
                             "on a registered name")
        return base, {**options.get(base, {}), **options.get(name, {}), **spec}
    return name, dict(options.get(name, {}))
