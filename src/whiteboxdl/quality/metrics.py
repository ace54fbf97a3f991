"""Batched torch versions of the explanation-quality metrics of the spec.

Every metric scores a batch of attributions ``a`` (same shape as the inputs ``x``) for the target
classes ``y`` and returns one float64 score per image. Perturbations are drawn from an explicit
``torch.Generator`` (or passed in), so a run is reproducible and a sharded run equals a single one.
The model is queried on many perturbed copies at once (``chunk`` images per forward pass), which is
what makes these versions fast; ``tests/quality`` checks each against Quantus 0.6 or Captum on the
very same perturbations.

Conventions follow Quantus unless the spec says otherwise: raw logits (no softmax), attributions
not normalised (the correlations are scale-invariant), Monotonicity Correlation on ``|a|``.

=========================  ===  ======================================================================
metric                     dir  what it measures
=========================  ===  ======================================================================
``infidelity``             ↓    Captum infidelity with optimal scaling β; noise patches (spec: 112 and
                                56 px on 224 px, here scaled to the image: side/2 and side/4), 5
                                repeats each; a patch is replaced by uniform noise over the domain
``faithfulness_correlation`` ↑  Pearson(Σ a over patch, f(x) − f(x with patch → baseline)) over the
                                4×4 grid of patches (spec: 16 patches of 56² on 224²)
``faithfulness_estimate``  ↑    Pearson over steps of the ``features_in_step`` most relevant pixels
``monotonicity_correlation`` ↑  Spearman(Σ|a| per step, E[(p(x') − p(x))²]/p(x)²), p = softmax
                                probability, steps in ascending order of |a|, uniform replacement
``max_sensitivity``        ↓    max over ``nr_samples`` noise draws (radius 0.02·half-range) of
                                ‖a(x+δ) − a(x)‖ / ‖a(x)‖
``random_logit``           ↓    SSIM (Quantus: 1-D, window 7, on the flattened maps, each normalised
                                by its max |a|) between the explanation of the target and of a
                                random other class
=========================  ===  ======================================================================

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
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

#: ``explain(x, target) -> attribution``, the explainer bound to the model (for the metrics that
#: re-explain perturbed inputs or other classes).
ExplainFn = Callable[[Tensor, Tensor], Tensor]
Domain = tuple[float, float]

DEFAULT_CHUNK = 2048


# ----------------------------------------------------------------------------- helpers
def _check_batch(x: Tensor, y: Tensor, a: Tensor | None = None) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"targets must have shape ({x.shape[0]},), got {tuple(y.shape)}")
    if a is not None and a.shape != x.shape:
        raise ValueError(f"attributions must have the inputs' shape {tuple(x.shape)}, "
                         f"got {tuple(a.shape)}")


@torch.no_grad()
def target_logits(model: nn.Module, x: Tensor, y: Tensor, chunk: int = DEFAULT_CHUNK,
                  softmax: bool = False) -> Tensor:
    """Logits ``model(x)[i, y[i]]`` (or softmax probabilities) as float64, ``chunk`` at a time."""
    out = []
    for i in range(0, x.shape[0], chunk):
        z = model(x[i:i + chunk])
        if softmax:
            z = torch.softmax(z, dim=1)
        out.append(z.double().gather(1, y[i:i + chunk, None])[:, 0])
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _perturbed_logits(model: nn.Module, xp: Tensor, y: Tensor, chunk: int,
                      softmax: bool = False) -> Tensor:
    """Logits of perturbed copies ``xp`` of shape (N, S, C, H, W) -> (N, S)."""
    n, s = xp.shape[:2]
    flat = target_logits(model, xp.reshape(n * s, *xp.shape[2:]), y.repeat_interleave(s), chunk,
                         softmax)
    return flat.view(n, s)


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


def _masked_logits(model: nn.Module, x: Tensor, y: Tensor, masks: Tensor, values: Tensor | float,
                   chunk: int) -> Tensor:
    """f(x with masked pixels replaced by ``values``) for masks (N, S, D) -> logits (N, S)."""
    n, s, d = masks.shape
    xf = x.reshape(n, 1, d)
    xp = torch.where(masks, torch.as_tensor(values, dtype=x.dtype), xf)
    return _perturbed_logits(model, xp.view(n, s, *x.shape[1:]), y, chunk)


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


def infidelity(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *,
               perturbations: Tensor | None = None, patch_sizes: Sequence[int] | None = None,
               repeats: int = 5, domain: Domain = (0.0, 1.0),
               generator: torch.Generator | None = None, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Infidelity with Captum's optimal scaling (``normalize=True``), lower is better.

    ``infid = mean_s (β·Iₛᵀa − (f(x) − f(x − Iₛ)))²`` with ``β = mean(Iᵀa·Δf) / mean((Iᵀa)²)``.
    ``perturbations`` (N, S, C, H, W) may be given; otherwise noise patches are drawn.
    """
    _check_batch(x, y, a)
    if perturbations is None:
        perturbations = noise_patch_perturbations(
            x, patch_sizes or default_patch_sizes(x), repeats, domain, generator)
    f0 = target_logits(model, x, y, chunk)
    fp = _perturbed_logits(model, x[:, None] - perturbations, y, chunk)
    diff = f0[:, None] - fp
    dots = (perturbations.double() * a.double()[:, None]).flatten(2).sum(-1)
    s_aa, s_ab, s_bb = (dots * dots).sum(1), (dots * diff).sum(1), (diff * diff).sum(1)
    beta = torch.where(s_aa > 0, s_ab / s_aa, torch.zeros_like(s_aa))
    return (beta * beta * s_aa - 2 * beta * s_ab + s_bb) / dots.shape[1]


# ----------------------------------------------------------------------------- faithfulness
def faithfulness_correlation(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *,
                             masks: Tensor | None = None, patch_size: int | None = None,
                             baseline: float = 0.0, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Faithfulness Correlation (Bhatt et al.), patch version; higher is better.

    For each mask (default: the grid of patches of side ``patch_size``, default side/4, i.e. the
    spec's 16 patches), the masked pixels are set to ``baseline``; the score is the Pearson
    correlation between the attribution sums over the masks and the logit drops.
    ``masks`` may be (P, D) shared by all images or (N, P, D) per image (Quantus's random subsets).
    """
    _check_batch(x, y, a)
    n, d = x.shape[0], x[0].numel()
    if masks is None:
        masks = patch_grid_masks(x.shape[1:], patch_size or max(1, min(x.shape[-2:]) // 4))
    if masks.ndim == 2:
        masks = masks.expand(n, *masks.shape)
    if masks.shape[0] != n or masks.shape[2] != d:
        raise ValueError(f"masks must be (P, {d}) or ({n}, P, {d}), got {tuple(masks.shape)}")
    f0 = target_logits(model, x, y, chunk)
    drops = f0[:, None] - _masked_logits(model, x, y, masks, baseline, chunk)
    sums = (a.reshape(n, 1, d).double() * masks).sum(-1)
    return pearson(sums, drops)


def _step_masks(order: np.ndarray, features_in_step: int) -> Tensor:
    """Masks (N, steps, D) selecting consecutive chunks of ``order`` (N, D)."""
    n, d = order.shape
    steps = math.ceil(d / features_in_step)
    masks = torch.zeros(n, steps, d, dtype=torch.bool)
    step_of = torch.arange(d) // features_in_step
    masks[torch.arange(n)[:, None], step_of[None, :].expand(n, d),
          torch.from_numpy(order.copy())] = True
    return masks


def faithfulness_estimate(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *,
                          features_in_step: int | None = None, baseline: float = 0.0,
                          chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Faithfulness Estimate (Alvarez-Melis & Jaakkola); higher is better.

    Pixels sorted by decreasing attribution are removed (set to ``baseline``) ``features_in_step``
    at a time (default: one image row's worth, i.e. ``W·C``), each step on its own; the score is
    the Pearson correlation of the attribution sums with the logit drops.
    """
    _check_batch(x, y, a)
    n = x.shape[0]
    k = features_in_step or x.shape[1] * x.shape[-1]
    a_flat = a.reshape(n, -1).double()
    # NumPy's argsort in the attributions' own dtype: ties break exactly as in Quantus.
    masks = _step_masks(np.argsort(-a.reshape(n, -1).detach().numpy(), axis=1), k)
    f0 = target_logits(model, x, y, chunk)
    drops = f0[:, None] - _masked_logits(model, x, y, masks, baseline, chunk)
    return pearson((a_flat[:, None] * masks).sum(-1), drops)


def monotonicity_correlation(model: nn.Module, x: Tensor, y: Tensor, a: Tensor, *,
                             features_in_step: int | None = None, nr_samples: int = 10,
                             domain: Domain = (0.0, 1.0), values: Tensor | None = None,
                             generator: torch.Generator | None = None, eps: float = 1e-5,
                             softmax: bool = True, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Monotonicity Correlation (Nguyen & Martínez, Quantus semantics); higher is better.

    Steps of ``features_in_step`` pixels in ascending order of ``|a|``; each step is perturbed
    ``nr_samples`` times by setting its pixels to one uniform value (Quantus's batched "uniform"
    baseline); the score is the Spearman correlation of ``Σ|a|`` per step with
    ``mean((f(x') − f(x))²)/f(x)²``, f = softmax probability of the target (Quantus's default;
    ``softmax=False`` uses the logit). ``values`` (steps, nr_samples, N) may be given.
    """
    _check_batch(x, y, a)
    n = x.shape[0]
    k = features_in_step or x.shape[1] * x.shape[-1]
    a_flat = a.reshape(n, -1).double().abs()
    masks = _step_masks(np.argsort(a.reshape(n, -1).detach().abs().numpy(), axis=1), k)
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
    # All steps × samples at once: (N, steps·S, D), forwarded in chunks.
    xp = torch.where(masks.repeat_interleave(s, dim=1),
                     values.permute(2, 0, 1).reshape(n, steps * s, 1).to(x.dtype),
                     x.reshape(n, 1, -1))
    fp = _perturbed_logits(model, xp.view(n, steps * s, *x.shape[1:]), y, chunk, softmax)
    variances = ((fp.view(n, steps, s) - f0[:, None, None]) ** 2).mean(2) * inv[:, None]
    sums = (a_flat[:, None] * masks).sum(-1)
    return spearman(sums, variances)


# ----------------------------------------------------------------------------- robustness
def max_sensitivity(explain: ExplainFn, x: Tensor, y: Tensor, a: Tensor, *, nr_samples: int = 10,
                    radius: float | None = None, domain: Domain = (0.0, 1.0),
                    noise: Tensor | None = None,
                    generator: torch.Generator | None = None) -> Tensor:
    """Max Sensitivity (Yeh et al.); lower is better.

    ``max_s ‖explain(x + δₛ) − a‖ / ‖a‖`` with δ uniform in [−r, r] per pixel, r = ``radius``
    (default: the spec's 0.02 on [−1, 1], scaled to the domain's half-range). ``noise``
    (S, N, C, H, W) may be given.
    """
    _check_batch(x, y, a)
    n = x.shape[0]
    if noise is None:
        r = radius if radius is not None else 0.02 * (domain[1] - domain[0]) / 2
        noise = (2 * torch.rand(nr_samples, *x.shape, generator=generator, dtype=x.dtype) - 1) * r
    a_flat = a.reshape(n, -1).double()
    den = a_flat.norm(dim=1)
    best = torch.full((n,), -math.inf, dtype=torch.float64)
    for delta in noise:
        xp = (x.double() + delta.double()).to(x.dtype)          # rounding as in Quantus
        a2 = explain(xp, y).detach().reshape(n, -1).double()
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


def random_logit(explain: ExplainFn, x: Tensor, y: Tensor, a: Tensor, *, num_classes: int,
                 other: Tensor | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
    """Random Logit (Sixt et al.); lower is better: the SSIM between the (max-normalised)
    explanation of the target and that of a random other class (``other``, drawn if not given)."""
    _check_batch(x, y, a)
    if other is None:
        other = random_other_class(y, num_classes, generator)
    n = x.shape[0]
    a_off = explain(x, other).detach().reshape(n, -1).double()
    return _ssim_1d(_normalise_by_max(a.reshape(n, -1).double()), _normalise_by_max(a_off))
