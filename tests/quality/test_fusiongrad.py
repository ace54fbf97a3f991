"""FusionGrad against a direct implementation of its definition, its limits, and the model's
weights coming back bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch

from whiteboxdl.quality.explainers import get_explainer, seed_global
from whiteboxdl.quality.fusiongrad import fusiongrad, noisy_weights

from .conftest import small_cnn


def _direct_fusiongrad(model, x, target, n, m, sigma_w, sigma_x, seed):
    """The definition, written out: for each weight sample a perturbed copy of the model
    (θ ⊙ ε, ε ~ N(1, σ_w²) per parameter), for each input sample x + ξ (ξ ~ N(0, σ_x²)), the
    gradient of the target logit of every image on its own; the mean of all n·m gradients."""
    torch.manual_seed(seed)
    total = torch.zeros_like(x, dtype=torch.float64)
    for _ in range(n):
        noisy = copy.deepcopy(model)
        with torch.no_grad():
            for p in noisy.parameters():
                p.mul_(1.0 + sigma_w * torch.randn(p.shape))
        xi = x[None] + sigma_x * torch.randn(m, *x.shape)          # the m input samples
        for j in range(m):
            for k in range(x.shape[0]):
                inp = xi[j, k:k + 1].clone().requires_grad_(True)
                (g,) = torch.autograd.grad(noisy(inp)[0, target[k]], inp)
                total[k] += g[0].double()
    return (total / (n * m)).float()


def test_fusiongrad_equals_its_definition(cnn, images):
    x, y = images
    torch.manual_seed(3)
    got = fusiongrad(cnn, x, y, weight_samples=3, input_samples=4, weight_std=0.5,
                     input_std=0.5, max_batch=5)                  # backward chunks cut samples
    ref = _direct_fusiongrad(cnn, x, y, 3, 4, 0.5, 0.5, seed=3)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_registry_fusiongrad_is_seeded_and_uses_the_papers_noise(cnn, images):
    x, y = images
    seed_global(5)
    a = get_explainer("FusionGrad", domain=(-1.0, 1.0), weight_samples=2, input_samples=3)(
        cnn, x, y)
    ref = _direct_fusiongrad(cnn, x, y, 2, 3, 0.5, 0.5, seed=5)     # σ_x = 0.5 on [−1, 1]
    torch.testing.assert_close(a, ref, rtol=1e-4, atol=1e-6)
    seed_global(5)
    b = get_explainer("FusionGrad", domain=(0.0, 1.0), weight_samples=2, input_samples=3)(
        cnn, x, y)
    torch.testing.assert_close(b, _direct_fusiongrad(cnn, x, y, 2, 3, 0.5, 0.25, seed=5),
                               rtol=1e-4, atol=1e-6)                 # scaled to the half-range


def test_without_noise_fusiongrad_is_the_gradient(cnn, images):
    x, y = images
    grad = get_explainer("Gradient")(cnn, x, y)
    fg = fusiongrad(cnn, x, y, weight_samples=2, input_samples=2, weight_std=0.0, input_std=0.0)
    torch.testing.assert_close(fg, grad, rtol=1e-5, atol=1e-7)


def test_on_a_linear_model_the_mean_weight_noise_is_one(linear_model):
    # f(x) = (W ⊙ E) x + b: every gradient is the noisy weight row, whatever the input noise;
    # the mean of n multiplicative N(1, σ²) factors has mean 1 and standard deviation σ/√n.
    x = torch.rand(2, 1, 8, 8)
    y = torch.tensor([1, 2])
    w = linear_model.linear.weight.detach()[y].view(2, 1, 8, 8)
    torch.manual_seed(0)
    fg = fusiongrad(linear_model, x, y, weight_samples=400, input_samples=1, weight_std=0.5)
    ratio = (fg / w).flatten()
    assert abs(float(ratio.mean()) - 1) < 0.02                   # 128 values of sd 0.025
    assert 0.015 < float(ratio.std()) < 0.035


def test_weights_are_restored_bit_for_bit_even_on_failure(cnn, images):
    x, y = images
    before = copy.deepcopy(cnn.state_dict())
    fusiongrad(cnn, x, y, weight_samples=2, input_samples=2)
    with pytest.raises(RuntimeError):
        fusiongrad(cnn, x, torch.tensor([0, 1, 2, 99]), weight_samples=2, input_samples=2)
    with pytest.raises(KeyError):
        with noisy_weights(cnn, 0.5):
            raise KeyError("inside")
    after = cnn.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="at least one"):
        fusiongrad(cnn, x, y, weight_samples=0)
    with pytest.raises(ValueError, match=">= 0"):
        fusiongrad(cnn, x, y, weight_std=-1.0)


def test_fusiongrad_differs_from_smoothgrad_on_a_relu_cnn(images):
    x, y = images
    model = small_cnn(seed=1)
    seed_global(0)
    fg = get_explainer("FusionGrad", weight_samples=2, input_samples=2)(model, x, y)
    sg = get_explainer("SmoothGrad", samples=4)(model, x, y)
    assert fg.shape == x.shape and not torch.allclose(fg, sg, atol=1e-4)
