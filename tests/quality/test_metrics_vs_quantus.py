"""The fast metrics equal Quantus 0.6 (and Captum's infidelity) on the very same perturbations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whiteboxdl.quality import metrics as M
from whiteboxdl.quality.explainers import get_explainer

qb = pytest.importorskip("whiteboxdl.quality.quantus_bridge")
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture
def setup(cnn, images):
    x, y = images
    grad = get_explainer("Gradient")

    def explain(inputs, targets):
        return grad(cnn, inputs, targets)

    return cnn, x, y, explain(x, y), explain


def _close(fast: torch.Tensor, ref: np.ndarray) -> None:
    np.testing.assert_allclose(fast.numpy(), ref, **TOL)


def test_faithfulness_correlation_equals_quantus_random_subsets(setup):
    model, x, y, a, _ = setup
    masks = qb.fc_masks(seed=3, n=4, d=784, nr_runs=12, subset_size=49)
    ref = qb.quantus_faithfulness_correlation(model, x, y, a, nr_runs=12, subset_size=49, seed=3)
    _close(M.faithfulness_correlation(model, x, y, a, masks=masks), ref)


def test_faithfulness_estimate_equals_quantus(setup):
    model, x, y, a, _ = setup
    ref = qb.quantus_faithfulness_estimate(model, x, y, a, features_in_step=28)
    _close(M.faithfulness_estimate(model, x, y, a, features_in_step=28), ref)


def test_monotonicity_correlation_equals_quantus(setup):
    model, x, y, a, _ = setup
    values = qb.mc_values(seed=5, n=4, steps=28, nr_samples=4)
    ref = qb.quantus_monotonicity_correlation(model, x, y, a, features_in_step=28, nr_samples=4,
                                              seed=5)
    _close(M.monotonicity_correlation(model, x, y, a, features_in_step=28, values=values), ref)


def test_max_sensitivity_equals_quantus(setup):
    model, x, y, a, explain = setup
    noise = qb.maxsens_noise(seed=7, shape=tuple(x.shape), nr_samples=5, radius=0.01)
    ref = qb.quantus_max_sensitivity(model, x, y, a, explain, nr_samples=5, radius=0.01, seed=7)
    _close(M.max_sensitivity(explain, x, y, a, noise=noise), ref)


def test_random_logit_equals_quantus(setup):
    model, x, y, a, explain = setup
    for i in range(2):                       # one image per call: Quantus normalises per batch
        xi, yi, ai = x[i:i + 1], y[i:i + 1], a[i:i + 1]
        other = qb.random_logit_classes(yi, 10, seed=42)
        ref = qb.quantus_random_logit(model, xi, yi, ai, explain, num_classes=10, seed=42)
        _close(M.random_logit(explain, xi, yi, ai, num_classes=10, other=other), ref)


def test_infidelity_equals_captum(setup):
    from captum.metrics import infidelity as captum_infidelity

    model, x, y, a, _ = setup
    p = M.noise_patch_perturbations(x, (14, 7), 5, (0.0, 1.0), torch.Generator().manual_seed(0))

    def perturb(inputs):
        flat = p.reshape(-1, *x.shape[1:])               # repeat_interleave order: image-major
        return flat, inputs - flat

    ref = captum_infidelity(model, perturb, x, a, target=y, n_perturb_samples=p.shape[1],
                            normalize=True)
    torch.testing.assert_close(M.infidelity(model, x, y, a, perturbations=p), ref.double(),
                               **TOL)


def test_focus_equals_quantus(cnn):
    from whiteboxdl.quality.focus import focus_score

    g = torch.Generator().manual_seed(0)
    mosaics = torch.rand(3, 1, 28, 28, generator=g)
    attributions = torch.randn(3, 1, 28, 28, generator=g)
    quadrants = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 1]], dtype=torch.bool)
    ref = qb.quantus_focus(cnn, mosaics, torch.zeros(3, dtype=torch.long),
                           mosaics * attributions, quadrants)
    _close(focus_score(mosaics, attributions, quadrants), ref)
