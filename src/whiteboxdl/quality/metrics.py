"""Batched torch versions of the explanation-quality metrics of the spec.

Every metric scores a batch of attributions ``a`` (same shape as the inputs ``x``) for the target
classes ``y`` and returns one float64 score per image. Perturbations are drawn from an explicit
``torch.Generator`` (or passed in), so a run is reproducible and a sharded run equals a single one.
The model is queried on many perturbed copies at once (built a forward batch at a time by
:mod:`whiteboxdl.quality.perturb`), which is what makes these versions fast; ``tests/quality``
checks each against Quantus 0.6 or Captum on the very same perturbations.

Metrics whose perturbations do not depend on the attribution (Infidelity, Faithfulness
Correlation) split in two: ``prepare_*`` draws the perturbations and runs the model on them once
per batch, and the metric scores any number of explainers against that (the runner shares it
between explainers, who meet the same perturbations anyway).

Conventions follow Quantus unless the spec says otherwise: raw logits (no softmax), attributions
not normalised (the correlations are scale-invariant), Monotonicity Correlation on ``|a|``.

==============================  ===  =====================================================================
metric                          dir  what it measures
==============================  ===  =====================================================================
``infidelity``                  ↓    Captum infidelity with optimal scaling β; one random noise patch per
                                     perturbation (spec: 112 and 56 px on 224 px, scaled: side/2, side/4)
``infidelity_blocks``           ↓    the paper's code: Quantus's block grid, blocks replaced one after
                                     another (cumulative) by one uniform value each, optimal scaling β
                                     pooled over all perturbations
``faithfulness_correlation``    ↑    Pearson(Σ a over a mask, f(x) − f(x with mask → baseline)); masks:
                                     the 4×4 patch grid (default) or Quantus's random feature subsets
``faithfulness_estimate``       ↑    Pearson over steps of the ``features_in_step`` most relevant values
``monotonicity_correlation``    ↑    Spearman(Σ ``|a|`` per step, E[(p(x') − p(x))²]/p(x)²), p = softmax
                                     probability, steps in ascending order of ``|a|``, uniform replacement
``max_sensitivity``             ↓    max over ``nr_samples`` noise draws (radius 0.02·half-range) of
                                     ‖a(x+δ) − a(x)‖ / ‖a(x)‖
``random_logit``                ↓    similarity of the explanation of the target and of a random other
                                     class: 1-D SSIM (Quantus's default) or Pearson (the paper)
==============================  ===  =====================================================================

Baselines (values that removed features take) are a number or, as Quantus, ``"black"`` = each
image's minimum (see :func:`whiteboxdl.quality.perturb.baseline_values`).

Example
-------
>>> import torch
>>> from whiteboxdl.quality.metrics import faithfulness_correlation
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
>>> x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 2])
>>> a = model[1].weight[y].view(2, 1, 4, 4) * x        # gradient × input is exact for a linear model
>>> faithfulness_correlation(model, x, y, a.detach(), patch_size=2).round(decimals=6).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from whiteboxdl.quality.perturb import (auto_chunk, baseline_values, block_ids, block_sums,
                                        cumulative_blocks, patch_grid_masks, perturbed_logits,
                                        random_subset_masks, replace_masked, step_masks,
                                        target_logits)

__all__ = ["infidelity", "infidelity_blocks", "prepare_infidelity", "prepare_infidelity_blocks",
           "faithfulness_correlation", "prepare_faithfulness_correlation", "faithfulness_estimate",
           "monotonicity_correlation", "max_sensitivity", "random_logit", "random_other_class",
           "noise_patch_perturbations", "default_patch_sizes", "patch_grid_masks",
           "target_logits", "pearson", "spearman", "block_values", "PatchNoiseDraws",
           "BlockDraws", "MaskDraws"]

#: ``explain(x, target) -> attribution``, the explainer bound to the model (for the metrics that
#: re-explain perturbed inputs or other classes).
ExplainFn = Callable[[Tensor, Tensor], Tensor]
Model = nn.Module | Callable[[Tensor], Tensor]
Domain = tuple[float, float]
Baseline = float | str | Tensor


# ----------------------------------------------------------------------------- helpers
def _check_batch(x: Tensor, y: Tensor, a: Tensor | None = None) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"targets must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if a is not None and a.shape != x.shape:
        raise ValueError(f"attributions must have the inputs' shape {tuple(x.shape)}, "
                         f"got {tuple(a.shape)}")


def _flat(a: Tensor) -> Tensor:
    return a.reshape(a.shape[0], -1).double()


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Pearson correlation of two (N, K) arrays in float64 (NaN for a constant row)."""
    a = a.double() - a.double().mean(1, keepdim=True)
    b = b.double() - b.double().mean(1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(1) / den
    return torch.where(den > 0, r.clamp(-1, 1), torch.full_like(r, float("nan")))


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Spearman correlation (average ranks for ties, as ``scipy.stats.spearmanr``)."""
    from scipy.stats import rankdata

    ra = torch.from_numpy(rankdata(a.double().numpy(), axis=1))
    rb = torch.from_numpy(rankdata(b.double().numpy(), axis=1))
    return pearson(ra, rb)


def _masked_sums(a: Tensor, masks: Tensor) -> Tensor:
    """Σ a over each mask: a (N, ...) and masks (N, S, D) -> (N, S) in float64, image by image."""
    flat = _flat(a)
    return torch.stack([masks[i].double() @ flat[i] for i in range(flat.shape[0])])


def _step_sums(a_flat: Tensor, order: np.ndarray, features_in_step: int) -> Tensor:
    """Σ of ``a_flat`` (N, D) over consecutive chunks of ``order`` (N, D) -> (N, steps)."""
    n, d = a_flat.shape
    steps = math.ceil(d / features_in_step)
    sorted_a = a_flat.gather(1, torch.from_numpy(order.copy()))
    padded = torch.zeros(n, steps * features_in_step, dtype=torch.float64)
    padded[:, :d] = sorted_a
    return padded.view(n, steps, features_in_step).sum(-1)


def _optimal_scaling_infidelity(dots: Tensor, drops: Tensor) -> Tensor:
    """Captum's infidelity with ``normalize=True``: ``mean_s (β·dots − drops)²`` with
    ``β = Σ dots·drops / Σ dots²`` per image (β = 0 when every dot is 0)."""
    s_aa, s_ab, s_bb = (dots * dots).sum(1), (dots * drops).sum(1), (drops * drops).sum(1)
    beta = torch.where(s_aa > 0, s_ab / torch.where(s_aa > 0, s_aa, torch.ones_like(s_aa)),
                       torch.zeros_like(s_aa))
    return (beta * beta * s_aa - 2 * beta * s_ab + s_bb) / dots.shape[1]


# ----------------------------------------------------------------------------- infidelity
def noise_patch_perturbations(x: Tensor, patch_sizes: Sequence[int], repeats: int, domain: Domain,
                              generator: torch.Generator | None = None) -> Tensor:
    """Perturbations I (N, S, C, H, W), S = repeats·len(patch_sizes): in each, one square patch at
    a uniformly random position is replaced by uniform noise over ``domain`` (``x − I`` is the
    perturbed image). Order: for each repeat, each patch size."""
    n, c, h, w = x.shape
    lo, hi = domain
    out = torch.zeros(n, repeats * len(patch_sizes), c, h, w, dtype=x.dtype)
    k = 0
    for _ in range(repeats):
        for p in patch_sizes:
            if not 1 <= p <= min(h, w):
                raise ValueError(f"noise patch size {p} does not fit images of {h}×{w}")
            tops = torch.randint(0, h - p + 1, (n,), generator=generator)
            lefts = torch.randint(0, w - p + 1, (n,), generator=generator)
            noise = lo + (hi - lo) * torch.rand(n, c, p, p, generator=generator, dtype=x.dtype)
            for i in range(n):
                t, l_ = int(tops[i]), int(lefts[i])
                patch = x[i, :, t:t + p, l_:l_ + p]
                out[i, k, :, t:t + p, l_:l_ + p] = patch - noise[i]
            k += 1
    return out


def default_patch_sizes(x: Tensor) -> tuple[int, int]:
    """The spec's 112 and 56 px noise patches on 224 px images, scaled: side/2 and side/4."""
    side = min(x.shape[-2:])
    return max(1, side // 2), max(1, side // 4)


@dataclass
class PatchNoiseDraws:
    """Noise-patch perturbations I (N, S, C, H, W) of a batch and the logit drops f(x) − f(x − I)."""

    perturbations: Tensor
    drops: Tensor

    def dots(self, a: Tensor) -> Tensor:
        """Iᵀa per image and perturbation (N, S)."""
        flat = _flat(a)
        return torch.stack([self.perturbations[i].double().flatten(1) @ flat[i]
                            for i in range(flat.shape[0])])


def prepare_infidelity(model: Model, x: Tensor, y: Tensor, *, perturbations: Tensor | None = None,
                       patch_sizes: Sequence[int] | None = None, repeats: int = 5,
                       domain: Domain = (0.0, 1.0), generator: torch.Generator | None = None,
                       chunk: int | None = None) -> PatchNoiseDraws:
    """Draw the noise patches of :func:`infidelity` (unless given) and the logit drops."""
    if perturbations is None:
        perturbations = noise_patch_perturbations(
            x, patch_sizes or default_patch_sizes(x), repeats, domain, generator)
    n, s = perturbations.shape[:2]
    f0 = target_logits(model, x, y, chunk)
    fp = perturbed_logits(model, y, n, s, lambda i, s0, s1: x[i] - perturbations[i, s0:s1],
                          chunk or auto_chunk(x))
    return PatchNoiseDraws(perturbations, f0[:, None] - fp)


def infidelity(model: Model, x: Tensor, y: Tensor, a: Tensor, *,
               perturbations: Tensor | None = None, patch_sizes: Sequence[int] | None = None,
               repeats: int = 5, domain: Domain = (0.0, 1.0),
               generator: torch.Generator | None = None, chunk: int | None = None,
               prepared: PatchNoiseDraws | None = None) -> Tensor:
    """Infidelity with Captum's optimal scaling (``normalize=True``), lower is better.

    ``infid = mean_s (β·Iₛᵀa − (f(x) − f(x − Iₛ)))²`` with ``β = mean(Iᵀa·Δf) / mean((Iᵀa)²)``.
    ``perturbations`` (N, S, C, H, W) may be given; otherwise noise patches are drawn.
    ``prepared`` (:func:`prepare_infidelity`) reuses the drops of another explainer's call.
    """
    _check_batch(x, y, a)
    if prepared is None:
        prepared = prepare_infidelity(model, x, y, perturbations=perturbations,
                                      patch_sizes=patch_sizes, repeats=repeats, domain=domain,
                                      generator=generator, chunk=chunk)
    return _optimal_scaling_infidelity(prepared.dots(a), prepared.drops)


@dataclass
class BlockDraws:
    """The block-grid perturbations of a batch: for each (repeat, block size), the block map
    (H, W) and the replacement value of every block (N, B); ``drops`` (N, S) in that order."""

    groups: list[tuple[Tensor, Tensor]]
    x: Tensor
    drops: Tensor

    def dots(self, a: Tensor) -> Tensor:
        """Iᵀa (N, S) with I = x − x': Σ over the replaced blocks of Σ a·x − v·Σ a."""
        out, sums = [], {}
        for ids, values in self.groups:
            key = id(ids)
            if key not in sums:
                sums[key] = (block_sums(a.double() * self.x.double(), ids), block_sums(a, ids))
            s_ax, s_a = sums[key]
            out.append(torch.cumsum(s_ax - values * s_a, dim=1))
        return torch.cat(out, dim=1)


def block_values(n: int, blocks: Sequence[int], repeats: int, low: float, high: float,
                 generator: torch.Generator | None = None) -> list[Tensor]:
    """Uniform replacement values, one per image and block (Quantus's batched ``"uniform"``
    baseline): a (N, B) tensor for each repeat and block size, in that order."""
    return [low + (high - low) * torch.rand(b, n, generator=generator, dtype=torch.float64).T
            for _ in range(repeats) for b in blocks]


def prepare_infidelity_blocks(model: Model, x: Tensor, y: Tensor, *,
                              patch_sizes: Sequence[int] = (56,), repeats: int = 5,
                              uniform: Domain = (-1.0, 1.0), values: list[Tensor] | None = None,
                              generator: torch.Generator | None = None,
                              chunk: int | None = None) -> BlockDraws:
    """The perturbations of :func:`infidelity_blocks` and their logit drops.

    For each repeat and block size, the images' ``block size``² blocks (row-major, every
    channel) are replaced one after another, each by one value uniform in ``uniform``, and the
    model is run after each block: perturbation k keeps blocks 0..k−1 replaced (Quantus 0.6
    ``Infidelity`` with ``perturb_baseline="uniform"``). ``values`` (see :func:`block_values`) may
    be given (float32-rounded when applied, as in Quantus's float32 arrays).
    """
    n, _, h, w = x.shape
    maps = {p: block_ids(h, w, p) for p in patch_sizes}
    counts = [int(maps[p].max()) + 1 for p in patch_sizes]
    if values is None:
        values = block_values(n, counts, repeats, uniform[0], uniform[1], generator)
    if len(values) != repeats * len(patch_sizes):
        raise ValueError(f"need {repeats * len(patch_sizes)} value tensors (repeats × block "
                         f"sizes), got {len(values)}")
    rounded = [v.to(x.dtype).double() for v in values]
    groups = [(maps[patch_sizes[k % len(patch_sizes)]], v) for k, v in enumerate(rounded)]
    f0 = target_logits(model, x, y, chunk)
    chunk = chunk or auto_chunk(x)
    drops = [f0[:, None] - perturbed_logits(model, y, n, v.shape[1],
                                            cumulative_blocks(x, ids, v), chunk)
             for ids, v in groups]
    return BlockDraws(groups, x, torch.cat(drops, dim=1))


def infidelity_blocks(model: Model, x: Tensor, y: Tensor, a: Tensor, *,
                      patch_sizes: Sequence[int] = (56,), repeats: int = 5,
                      uniform: Domain = (-1.0, 1.0), values: list[Tensor] | None = None,
                      optimal_scaling: bool = True, generator: torch.Generator | None = None,
                      chunk: int | None = None, prepared: BlockDraws | None = None) -> Tensor:
    """Infidelity on Quantus's cumulative block grid (the paper's code); lower is better.

    With ``optimal_scaling`` (the paper's ``InfidelityOptimalScaling``) one β per image is fitted
    over all perturbations pooled, as Captum's ``normalize=True``; without it the score is
    Quantus's ``Infidelity``: the mean of ``(Iᵀa − Δf)²`` over each block size's perturbations,
    averaged over block sizes and repeats.
    """
    _check_batch(x, y, a)
    if prepared is None:
        prepared = prepare_infidelity_blocks(model, x, y, patch_sizes=patch_sizes,
                                             repeats=repeats, uniform=uniform, values=values,
                                             generator=generator, chunk=chunk)
    dots = prepared.dots(a)
    if optimal_scaling:
        return _optimal_scaling_infidelity(dots, prepared.drops)
    sizes = [v.shape[1] for _, v in prepared.groups]
    errors = ((dots - prepared.drops) ** 2).split(sizes, dim=1)
    return torch.stack([e.mean(1) for e in errors], dim=1).mean(1)


# ----------------------------------------------------------------------------- faithfulness
@dataclass
class MaskDraws:
    """Removal masks (N, S, D) of a batch and the logit drops f(x) − f(x with mask → baseline)."""

    masks: Tensor
    drops: Tensor


def prepare_faithfulness_correlation(model: Model, x: Tensor, y: Tensor, *,
                                     masks: Tensor | None = None, patch_size: int | None = None,
                                     subset_size: int | None = None, nr_runs: int = 100,
                                     baseline: Baseline = 0.0,
                                     generator: torch.Generator | None = None,
                                     chunk: int | None = None) -> MaskDraws:
    """The masks of :func:`faithfulness_correlation` and their logit drops."""
    n, d = x.shape[0], x[0].numel()
    if masks is None:
        if subset_size is not None:
            masks = random_subset_masks(n, d, nr_runs, subset_size, generator)
        else:
            masks = patch_grid_masks(x.shape[1:], patch_size or max(1, min(x.shape[-2:]) // 4))
    if masks.ndim == 2:
        masks = masks.expand(n, *masks.shape)
    if masks.shape[0] != n or masks.shape[2] != d:
        raise ValueError(f"masks must be (P, {d}) or ({n}, P, {d}), got {tuple(masks.shape)}")
    f0 = target_logits(model, x, y, chunk)
    fp = perturbed_logits(model, y, n, masks.shape[1],
                          replace_masked(x, masks, baseline_values(x, baseline)),
                          chunk or auto_chunk(x))
    return MaskDraws(masks, f0[:, None] - fp)


def faithfulness_correlation(model: Model, x: Tensor, y: Tensor, a: Tensor, *,
                             masks: Tensor | None = None, patch_size: int | None = None,
                             subset_size: int | None = None, nr_runs: int = 100,
                             baseline: Baseline = 0.0, generator: torch.Generator | None = None,
                             chunk: int | None = None,
                             prepared: MaskDraws | None = None) -> Tensor:
    """Faithfulness Correlation (Bhatt et al.); higher is better.

    For each mask the masked values are set to ``baseline``; the score is the Pearson
    correlation between the attribution sums over the masks and the logit drops. Masks: the
    grid of patches of side ``patch_size`` (default side/4, the spec's 16 patches), or with
    ``subset_size`` Quantus's ``nr_runs`` random subsets of that many values (the paper's code:
    100 × 12,544 of 3·224², baseline ``"black"``); ``masks`` may be given, (P, D) shared by all
    images or (N, P, D) per image.
    """
    _check_batch(x, y, a)
    if prepared is None:
        prepared = prepare_faithfulness_correlation(
            model, x, y, masks=masks, patch_size=patch_size, subset_size=subset_size,
            nr_runs=nr_runs, baseline=baseline, generator=generator, chunk=chunk)
    return pearson(_masked_sums(a, prepared.masks), prepared.drops)


def faithfulness_estimate(model: Model, x: Tensor, y: Tensor, a: Tensor, *,
                          features_in_step: int | None = None, baseline: Baseline = 0.0,
                          chunk: int | None = None) -> Tensor:
    """Faithfulness Estimate (Alvarez-Melis & Jaakkola); higher is better.

    Values sorted by decreasing attribution are removed (set to ``baseline``) ``features_in_step``
    at a time (default: one image row's worth, i.e. ``W·C``), each step on its own; the score is
    the Pearson correlation of the attribution sums with the logit drops.
    """
    _check_batch(x, y, a)
    n = x.shape[0]
    k = features_in_step or x.shape[1] * x.shape[-1]
    # NumPy's argsort in the attributions' own dtype: ties break exactly as in Quantus.
    order = np.argsort(-a.reshape(n, -1).detach().numpy(), axis=1)
    masks = step_masks(order, k)
    f0 = target_logits(model, x, y, chunk)
    fp = perturbed_logits(model, y, n, masks.shape[1],
                          replace_masked(x, masks, baseline_values(x, baseline)),
                          chunk or auto_chunk(x))
    return pearson(_step_sums(_flat(a), order, k), f0[:, None] - fp)


def monotonicity_correlation(model: Model, x: Tensor, y: Tensor, a: Tensor, *,
                             features_in_step: int | None = None, nr_samples: int = 10,
                             domain: Domain = (0.0, 1.0), values: Tensor | None = None,
                             generator: torch.Generator | None = None, eps: float = 1e-5,
                             softmax: bool = True, chunk: int | None = None) -> Tensor:
    """Monotonicity Correlation (Nguyen & Martínez, Quantus semantics); higher is better.

    Steps of ``features_in_step`` values in ascending order of ``|a|``; each step is perturbed
    ``nr_samples`` times by setting its values to one uniform value in ``domain`` (Quantus's
    batched "uniform" baseline, whose default range is [0, 1] whatever the inputs); the score is
    the Spearman correlation of ``Σ|a|`` per step with ``mean((f(x') − f(x))²)/f(x)²``, f =
    softmax probability of the target (Quantus's default; ``softmax=False`` uses the logit).
    ``values`` (steps, nr_samples, N) may be given.
    """
    _check_batch(x, y, a)
    n = x.shape[0]
    k = features_in_step or x.shape[1] * x.shape[-1]
    order = np.argsort(a.reshape(n, -1).detach().abs().numpy(), axis=1)
    masks = step_masks(order, k)
    steps = masks.shape[1]
    if values is None:
        lo, hi = domain
        values = lo + (hi - lo) * torch.rand(steps, nr_samples, n, generator=generator,
                                             dtype=torch.float64)
    if values.shape[:1] != (steps,) or values.shape[2] != n:
        raise ValueError(f"values must be ({steps}, S, {n}), got {tuple(values.shape)}")
    s = values.shape[1]
    f0 = target_logits(model, x, y, chunk, softmax)
    inv = torch.where(f0.abs() >= eps, 1.0 / f0.abs().clamp_min(eps), torch.ones_like(f0)) ** 2
    # Every step × sample: perturbation j = step j // S with value j % S.
    fp = perturbed_logits(model, y, n, steps * s,
                          replace_masked(x, masks.repeat_interleave(s, dim=1),
                                         values.permute(2, 0, 1).reshape(n, steps * s)),
                          chunk or auto_chunk(x), softmax)
    variances = ((fp.view(n, steps, s) - f0[:, None, None]) ** 2).mean(2) * inv[:, None]
    return spearman(_step_sums(_flat(a).abs(), order, k), variances)


# ----------------------------------------------------------------------------- robustness
def max_sensitivity(explain: ExplainFn, x: Tensor, y: Tensor, a: Tensor, *, nr_samples: int = 10,
                    radius: float | None = None, domain: Domain = (0.0, 1.0),
                    noise: Tensor | None = None,
                    generator: torch.Generator | None = None) -> Tensor:
    """Max Sensitivity (Yeh et al.); lower is better.

    ``max_s ‖explain(x + δₛ) − a‖ / ‖a‖`` with δ uniform in [−r, r] per value, r = ``radius``
    (default: the spec's 0.02 on [−1, 1], scaled to the domain's half-range). ``noise``
    (S, N, C, H, W) may be given.
    """
    _check_batch(x, y, a)
    n = x.shape[0]
    if noise is None:
        r = radius if radius is not None else 0.02 * (domain[1] - domain[0]) / 2
        noise = (2 * torch.rand(nr_samples, *x.shape, generator=generator, dtype=x.dtype) - 1) * r
    a_flat = _flat(a)
    den = a_flat.norm(dim=1)
    best = torch.full((n,), -math.inf, dtype=torch.float64)
    for delta in noise:
        xp = (x.double() + delta.double()).to(x.dtype)          # rounding as in Quantus
        a2 = _flat(explain(xp, y).detach())
        best = torch.maximum(best, (a_flat - a2).norm(dim=1) / den)
    return best


def _ssim_1d(a: Tensor, b: Tensor, win_size: int = 7) -> Tensor:
    """skimage's ``structural_similarity`` of 1-D signals (uniform window, sample covariance,
    ``data_range`` = max − min of both), row-wise on (N, D) float64 arrays."""
    rng = torch.maximum(a.amax(1), b.amax(1)) - torch.minimum(a.amin(1), b.amin(1))
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    kernel = torch.full((1, 1, win_size), 1.0 / win_size, dtype=torch.float64)

    def filt(t: Tensor) -> Tensor:
        return torch.nn.functional.conv1d(t[:, None], kernel)[:, 0]

    cov_norm = win_size / (win_size - 1)
    ux, uy = filt(a), filt(b)
    vx = cov_norm * (filt(a * a) - ux * ux)
    vy = cov_norm * (filt(b * b) - uy * uy)
    vxy = cov_norm * (filt(a * b) - ux * uy)
    c1, c2 = c1[:, None], c2[:, None]
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(1)


def _normalise_by_max(a: Tensor) -> Tensor:
    m = a.abs().amax(1, keepdim=True)
    return torch.where(m > 0, a / torch.where(m > 0, m, torch.ones_like(m)), a)


def random_other_class(y: Tensor, num_classes: int,
                       generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random class different from each ``y[i]``."""
    off = torch.randint(0, num_classes - 1, y.shape, generator=generator)
    return off + (off >= y).long()


#: Similarities :func:`random_logit` offers.
SIMILARITIES = ("ssim", "pearson")


def random_logit(explain: ExplainFn, x: Tensor, y: Tensor, a: Tensor, *, num_classes: int,
                 other: Tensor | None = None, similarity: str = "ssim",
                 generator: torch.Generator | None = None) -> Tensor:
    """Random Logit (Sixt et al.); lower is better: the similarity between the (max-normalised)
    explanation of the target and that of a random other class (``other``, drawn if not given):
    ``"ssim"`` (Quantus's default) or ``"pearson"`` (the paper's code)."""
    _check_batch(x, y, a)
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    if other is None:
        other = random_other_class(y, num_classes, generator)
    a_off = _flat(explain(x, other).detach())
    if similarity == "pearson":
        return pearson(_flat(a), a_off)
    return _ssim_1d(_normalise_by_max(_flat(a)), _normalise_by_max(a_off))
