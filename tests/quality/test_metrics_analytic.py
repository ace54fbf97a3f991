"""Each metric on a linear model, where the ideal attribution is known analytically."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from whiteboxdl.quality import metrics as M
from whiteboxdl.quality.metric_registry import get_metric

N = 5


@pytest.fixture
def batch(linear_model):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(N, 1, 8, 8, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1])
    w = linear_model.linear.weight.detach()[y].view(N, 1, 8, 8)
    return x, y, w


def test_infidelity_is_zero_for_the_gradient_under_noise_patches(linear_model, batch):
    x, y, w = batch
    g = torch.Generator().manual_seed(0)
    # f(x) − f(x − I) = wᵀI exactly, so the gradient has zero infidelity (with β = 1).
    score = M.infidelity(linear_model, x, y, w, generator=g)
    assert score.shape == (N,)
    assert torch.all(score.abs() < 1e-8)
    # A wrong attribution (gradient of another class) is not faithful.
    wrong = linear_model.linear.weight.detach()[(y + 1) % 3].view(N, 1, 8, 8)
    assert torch.all(M.infidelity(linear_model, x, y, wrong, generator=g) > 1e-2)


def test_infidelity_optimal_scaling_makes_it_scale_invariant(linear_model, batch):
    x, y, w = batch
    a = w * x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    p = M.noise_patch_perturbations(x, (4, 2), 5, (0.0, 1.0), torch.Generator().manual_seed(1))
    s1 = M.infidelity(linear_model, x, y, a, perturbations=p)
    s2 = M.infidelity(linear_model, x, y, 37.0 * a, perturbations=p)
    torch.testing.assert_close(s1, s2, rtol=1e-6, atol=0)  # a is float32
    assert torch.all(s1 > 0)


def test_noise_patches_replace_one_patch_by_uniform_noise(batch):
    x, _, _ = batch
    p = M.noise_patch_perturbations(x, (4, 2), 3, (0.0, 1.0), torch.Generator().manual_seed(0))
    assert p.shape == (N, 6, 1, 8, 8)
    changed = (p != 0).flatten(2).sum(-1)
    assert torch.all(changed <= torch.tensor([16, 4] * 3))           # one patch of each size
    perturbed = x[:, None] - p
    assert perturbed.min() >= 0 and perturbed.max() <= 1             # noise stays in the domain


def test_faithfulness_correlation_and_estimate_are_one_for_gradient_times_input(
        linear_model, batch):
    x, y, w = batch
    a = w * x                                                        # exact: drop = Σ a (removed)
    fc = M.faithfulness_correlation(linear_model, x, y, a)           # 4×4 grid of 2×2 patches
    fe = M.faithfulness_estimate(linear_model, x, y, a)
    torch.testing.assert_close(fc, torch.ones(N, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(fe, torch.ones(N, dtype=torch.float64), atol=1e-6, rtol=0)
    # Negated attributions are perfectly anti-correlated.
    torch.testing.assert_close(M.faithfulness_correlation(linear_model, x, y, -a),
                               -torch.ones(N, dtype=torch.float64), atol=1e-6, rtol=0)


def test_default_patch_grid_is_the_specs_sixteen_patches():
    masks = M.patch_grid_masks((1, 28, 28), 7)
    assert masks.shape == (16, 784)
    assert torch.all(masks.sum(0) == 1) and torch.all(masks.sum(1) == 49)


def test_monotonicity_correlation_analytic(linear_model):
    # x = 0, positive weights, one replacement value per sample shared by all steps: the variance
    # of step j is v̄²·(Σ_j w)² / f(0)², increasing in Σ_j |a| for a = w, so Spearman = 1.
    model = linear_model
    with torch.no_grad():
        model.linear.weight.abs_()
        model.linear.bias.fill_(1.0)
    x = torch.zeros(2, 1, 8, 8)
    y = torch.tensor([0, 2])
    a = model.linear.weight.detach()[y].view(2, 1, 8, 8)
    values = torch.linspace(0.1, 0.9, 6, dtype=torch.float64).view(1, 6, 1).expand(8, 6, 2)
    mc = M.monotonicity_correlation(model, x, y, a, features_in_step=8, values=values,
                                    softmax=False)
    torch.testing.assert_close(mc, torch.ones(2, dtype=torch.float64))
    # Attributions that rank the steps backwards (1/w) give −1.
    mc_rev = M.monotonicity_correlation(model, x, y, 1 / a, features_in_step=1,
                                        values=values[:1].expand(64, 6, 2), softmax=False)
    torch.testing.assert_close(mc_rev, -torch.ones(2, dtype=torch.float64))


def test_max_sensitivity_analytic(linear_model, batch):
    x, y, w = batch
    weight = linear_model.linear.weight.detach()

    def gradient(inputs, targets):
        return weight[targets].view(-1, 1, 8, 8).expand_as(inputs)

    def grad_x_input(inputs, targets):
        return gradient(inputs, targets) * inputs

    noise = (torch.rand(7, *x.shape, generator=torch.Generator().manual_seed(3)) * 2 - 1) * 0.02
    assert torch.all(M.max_sensitivity(gradient, x, y, w, noise=noise) == 0)
    got = M.max_sensitivity(grad_x_input, x, y, w * x, noise=noise)
    # ‖w⊙(x+δ) − w⊙x‖ / ‖w⊙x‖ = ‖w⊙δ‖ / ‖w⊙x‖ (in float64: the float32 rounding of x+δ aside)
    expected = ((w[None] * noise).flatten(2).norm(dim=2) / (w * x).flatten(1).norm(dim=1)).amax(0)
    torch.testing.assert_close(got, expected.double(), rtol=1e-4, atol=0)


def test_random_logit_equals_skimage_ssim(linear_model, batch):
    x, y, _ = batch
    weight = linear_model.linear.weight.detach()

    def gradient(inputs, targets):
        return weight[targets].view(-1, 1, 8, 8).clone()

    other = (y + 1) % 3
    got = M.random_logit(gradient, x, y, gradient(x, y), num_classes=3, other=other)
    for i in range(N):
        a = weight[y[i]].double().numpy()
        b = weight[other[i]].double().numpy()
        a, b = a / np.abs(a).max(), b / np.abs(b).max()
        rng = max(a.max(), b.max()) - min(a.min(), b.min())
        assert got[i].item() == pytest.approx(structural_similarity(a, b, data_range=rng), abs=1e-10)
    # The explanation of a class is identical to itself: SSIM 1.
    same = M.random_logit(gradient, x, y, gradient(x, y), num_classes=3, other=y)
    torch.testing.assert_close(same, torch.ones(N, dtype=torch.float64))


def test_random_other_class_never_returns_the_target():
    y = torch.arange(10).repeat(50)
    other = M.random_other_class(y, 10, torch.Generator().manual_seed(0))
    assert torch.all(other != y) and other.min() >= 0 and other.max() <= 9
    assert len(other[y == 0].unique()) == 9                           # all others reachable


def test_metrics_reject_bad_shapes(linear_model, batch):
    x, y, w = batch
    with pytest.raises(ValueError, match="attributions must have"):
        M.faithfulness_correlation(linear_model, x, y, w[:, :, :4])
    with pytest.raises(ValueError, match="targets must have shape"):
        M.infidelity(linear_model, x, y[:2], w)
    with pytest.raises(ValueError, match="unknown metric"):
        get_metric("Nope")
