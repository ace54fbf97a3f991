"""Quantus (GPL, optional extra ``eval``) configured like the fast metrics, on the same draws.

Nothing in the core package imports this module. Each ``quantus_*`` function runs the Quantus 0.6
metric with the settings of the matching function in :mod:`whiteboxdl.quality.metrics` and with
NumPy's global generator seeded, and :func:`quantus_draws` replays that generator to produce the
perturbations Quantus will draw, so the fast version can be run on the very same perturbations.

Example
-------
>>> import numpy as np, torch                                       # doctest: +SKIP
>>> from whiteboxdl.quality.quantus_bridge import quantus_faithfulness_estimate
>>> scores = quantus_faithfulness_estimate(model, x, y, a, features_in_step=28)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

try:
    import quantus
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    raise ImportError("whiteboxdl.quality.quantus_bridge needs Quantus: pip install "
                      "'whiteboxdl[eval]'") from exc


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def explain_func(explain: Callable[[Tensor, Tensor], Tensor]):
    """Wrap ``explain(x, target) -> attribution`` as a Quantus ``explain_func``."""

    def run(model, inputs, targets, **_):
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        y = torch.as_tensor(np.asarray(targets), dtype=torch.long)
        return _np(explain(x, y))

    return run


def _call(metric, model: nn.Module, x: Tensor, y: Tensor, a: Tensor, seed: int, **kwargs):
    np.random.seed(seed)
    out = metric(model=model.eval(), x_batch=_np(x), y_batch=_np(y), a_batch=_np(a),
                 device="cpu", batch_size=x.shape[0], **kwargs)
    return np.asarray(out, dtype=np.float64)


def quantus_faithfulness_correlation(model, x, y, a, *, nr_runs: int, subset_size: int,
                                     baseline: float | str = 0.0, normalise: bool = False,
                                     seed: int = 0) -> np.ndarray:
    """Quantus FaithfulnessCorrelation (random pixel subsets, Pearson; the paper's code leaves
    ``normalise`` at Quantus's default True and the baseline at ``"black"``)."""
    m = quantus.FaithfulnessCorrelation(nr_runs=nr_runs, subset_size=subset_size,
                                        perturb_baseline=baseline, normalise=normalise, abs=False,
                                        return_aggregate=False, disable_warnings=True)
    return _call(m, model, x, y, a, seed)


def quantus_faithfulness_estimate(model, x, y, a, *, features_in_step: int,
                                  baseline: float | str = 0.0, normalise: bool = False,
                                  seed: int = 0) -> np.ndarray:
    """Quantus FaithfulnessEstimate (Pearson)."""
    m = quantus.FaithfulnessEstimate(features_in_step=features_in_step, perturb_baseline=baseline,
                                     normalise=normalise, abs=False, disable_warnings=True)
    return _call(m, model, x, y, a, seed)


def quantus_infidelity(model, x, y, a, *, patch_sizes, repeats: int, uniform=(-1.0, 1.0),
                       seed: int = 0) -> np.ndarray:
    """Quantus Infidelity (block grid, uniform baseline, MSE without scaling: the loss the
    paper's optimal-scaling subclass replaces)."""
    m = quantus.Infidelity(perturb_baseline="uniform", n_perturb_samples=repeats,
                           perturb_patch_sizes=list(patch_sizes),
                           perturb_func_kwargs={"uniform_low": uniform[0],
                                                "uniform_high": uniform[1]},
                           disable_warnings=True)
    return _call(m, model, x, y, a, seed)


def quantus_monotonicity_correlation(model, x, y, a, *, features_in_step: int, nr_samples: int,
                                     domain=(0.0, 1.0), normalise: bool = False,
                                     seed: int = 0) -> np.ndarray:
    """Quantus MonotonicityCorrelation (uniform baseline over ``domain``, Spearman, |a|)."""
    m = quantus.MonotonicityCorrelation(
        features_in_step=features_in_step, nr_samples=nr_samples, perturb_baseline="uniform",
        perturb_func_kwargs={"uniform_low": domain[0], "uniform_high": domain[1]},
        normalise=normalise, abs=True, disable_warnings=True)
    return _call(m, model, x, y, a, seed)


def quantus_max_sensitivity(model, x, y, a, explain, *, nr_samples: int, radius: float,
                            seed: int = 0) -> np.ndarray:
    """Quantus MaxSensitivity (uniform noise in [−radius, radius], Frobenius norms)."""
    m = quantus.MaxSensitivity(nr_samples=nr_samples, lower_bound=radius, normalise=False,
                               abs=False, disable_warnings=True)
    return _call(m, model, x, y, a, seed, explain_func=explain_func(explain))


def quantus_random_logit(model, x, y, a, explain, *, num_classes: int, similarity: str = "ssim",
                         seed: int = 42) -> np.ndarray:
    """Quantus RandomLogit (normalise by max; per-sample when called with one image), with
    its default SSIM or the paper's Pearson correlation."""
    func = {"ssim": quantus.similarity_func.ssim,
            "pearson": quantus.similarity_func.correlation_pearson}[similarity]
    m = quantus.RandomLogit(num_classes=num_classes, seed=seed, normalise=True, abs=False,
                            similarity_func=func, disable_warnings=True)
    return _call(m, model, x, y, a, seed, explain_func=explain_func(explain))


def quantus_explain(model, x, y, method: str) -> np.ndarray:
    """``quantus.explain`` (Captum methods, attributions summed over channels: (N, 1, H, W)),
    as the paper's code calls it for its baseline explainers."""
    return np.asarray(quantus.explain(model.eval(), _np(x), _np(y), method=method, device="cpu"))


def quantus_focus(model, mosaics, y, a, quadrants) -> np.ndarray:
    """Quantus Focus on mosaics, ``a`` = relevance (input ⊙ attribution), quadrants (N, 4)."""
    m = quantus.Focus(normalise=False, abs=False, disable_warnings=True)
    return np.asarray(m(model=model.eval(), x_batch=_np(mosaics), y_batch=_np(y), a_batch=_np(a),
                        custom_batch=_np(quadrants).astype(np.float64), device="cpu",
                        batch_size=mosaics.shape[0]), dtype=np.float64)


# ----------------------------------------------------------------------------- replayed draws
def fc_masks(seed: int, n: int, d: int, nr_runs: int, subset_size: int,
             named_baseline: bool = False) -> Tensor:
    """The pixel subsets Quantus FaithfulnessCorrelation draws after ``np.random.seed(seed)``:
    masks (N, nr_runs, D). With a named baseline (``"black"`` …) each run's replacement also
    draws N uniform numbers (Quantus computes every named baseline, "uniform" included)."""
    np.random.seed(seed)
    masks = torch.zeros(n, nr_runs, d, dtype=torch.bool)
    for r in range(nr_runs):
        for i in range(n):
            masks[i, r, np.random.choice(d, subset_size, replace=False)] = True
        if named_baseline:
            np.random.uniform(size=n)
    return masks


def infidelity_values(seed: int, n: int, blocks, repeats: int, uniform=(-1.0, 1.0)
                      ) -> list[Tensor]:
    """The block values Quantus Infidelity (uniform baseline) draws: one (N, B) tensor per
    repeat and block size, as :func:`whiteboxdl.quality.metrics.block_values` lays them out."""
    np.random.seed(seed)
    out = []
    for _ in range(repeats):
        for b in blocks:
            out.append(torch.from_numpy(np.stack(
                [np.random.uniform(uniform[0], uniform[1], size=n) for _ in range(b)], axis=1)))
    return out


def mc_values(seed: int, n: int, steps: int, nr_samples: int, domain=(0.0, 1.0)) -> Tensor:
    """The uniform replacement values Quantus MonotonicityCorrelation draws: (steps, S, N)."""
    np.random.seed(seed)
    vals = [[np.random.uniform(low=domain[0], high=domain[1], size=n) for _ in range(nr_samples)]
            for _ in range(steps)]
    return torch.from_numpy(np.asarray(vals))


def maxsens_noise(seed: int, shape: tuple[int, ...], nr_samples: int, radius: float) -> Tensor:
    """The noise Quantus MaxSensitivity draws: (S, N, C, H, W)."""
    np.random.seed(seed)
    n, d = shape[0], int(np.prod(shape[1:]))
    return torch.from_numpy(np.stack([np.random.uniform(-radius, radius, size=(n, d))
                                      for _ in range(nr_samples)])).view(nr_samples, *shape)


def random_logit_classes(y: Tensor, num_classes: int, seed: int = 42) -> Tensor:
    """The "other" classes Quantus RandomLogit picks after ``np.random.seed(seed)``."""
    np.random.seed(seed)
    n = y.shape[0]
    off_idx = np.random.randint(0, num_classes - 1, n)
    classes = np.stack([np.delete(np.arange(num_classes), int(c)) for c in y.tolist()])
    return torch.from_numpy(classes[np.arange(n), off_idx])
