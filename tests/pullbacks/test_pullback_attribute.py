"""ExcitationPullback (Captum API, NoiseTunnel), the Quantus explain_func, and the ascent."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from whiteboxdl.pullbacks import (
    ExcitationPullback,
    GradientAscent,
    PullbackAscent,
    excitation_pullbacks,
    pullback_explain_func,
)


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                         nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * 4 * 4, 10)).eval()


def manual_pullback(model, x, targets, **ctx):
    """Reference: per-example backward of its own target logit inside the context."""
    rows = []
    for xi, t in zip(x, targets):
        xi = xi[None].clone().requires_grad_()
        with excitation_pullbacks(**ctx):
            (g,) = torch.autograd.grad(model(xi)[0, t], xi)
        rows.append(g[0])
    return torch.stack(rows)


def test_targets_as_int_list_tensor():
    model, x = small_cnn(), torch.rand(3, 1, 12, 12)
    exp = ExcitationPullback(model, temperature=0.4)
    want = manual_pullback(model, x, [1, 5, 9], temperature=0.4)
    for target in ([1, 5, 9], torch.tensor([1, 5, 9])):
        torch.testing.assert_close(exp.attribute(x, target=target), want)
    torch.testing.assert_close(exp.attribute(x, target=2),
                               manual_pullback(model, x, [2, 2, 2], temperature=0.4))
    assert not x.requires_grad


def test_noise_tunnel_accepts_the_explainer():
    from captum.attr import NoiseTunnel

    model, x = small_cnn(), torch.rand(2, 1, 12, 12)
    exp = ExcitationPullback(model)
    nt = NoiseTunnel(exp)
    # zero noise: SmoothGrad over pullbacks = the pullback
    flat = nt.attribute(x, nt_type="smoothgrad", nt_samples=3, stdevs=0.0, target=[0, 4])
    torch.testing.assert_close(flat, exp.attribute(x, target=[0, 4]), rtol=1e-5, atol=1e-7)
    torch.manual_seed(1)
    noisy = nt.attribute(x, nt_type="smoothgrad", nt_samples=4, stdevs=0.2, target=[0, 4])
    torch.manual_seed(1)   # the same noise, averaged by hand
    noise = torch.normal(0, 0.2, (8, 1, 12, 12))
    manual = manual_pullback(model, x.repeat_interleave(4, 0) + noise, [0] * 4 + [4] * 4)
    torch.testing.assert_close(noisy, manual.view(2, 4, 1, 12, 12).mean(1), rtol=1e-5, atol=1e-7)


def test_warns_once_in_training_mode():
    model = small_cnn().train()
    exp = ExcitationPullback(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp.attribute(torch.rand(2, 1, 12, 12), target=0)
        exp.attribute(torch.rand(2, 1, 12, 12), target=0)
    assert sum("training mode" in str(w.message) for w in caught) == 1


def test_quantus_accepts_the_explain_func():
    quantus = pytest.importorskip("quantus")
    model, x = small_cnn(), torch.rand(4, 1, 12, 12)
    y = np.array([0, 3, 5, 7])
    a = pullback_explain_func(model, x.numpy(), y, temperature=0.3)
    np.testing.assert_allclose(a, manual_pullback(model, x, y.tolist()).numpy(), rtol=1e-5,
                               atol=1e-7)
    metric = quantus.MaxSensitivity(nr_samples=2, lower_bound=0.02, disable_warnings=True,
                                    display_progressbar=False)
    scores = metric(model=model, x_batch=x.numpy(), y_batch=y, a_batch=None, device="cpu",
                    explain_func=pullback_explain_func,
                    explain_func_kwargs={"temperature": 0.3})
    assert len(scores) == 4 and np.all(np.isfinite(scores)) and np.all(np.asarray(scores) > 0)


# ------------------------------------------------------------------------------------- ascent
def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def test_single_step_is_alpha_along_the_normalised_pullback():
    net, x = _net(), torch.rand(3, 3, 2, 2) * 0.2
    res = PullbackAscent(net, steps=1, alpha=0.7, clip=None).ascend(x, target=[0, 1, 3])
    g = manual_pullback(net, x, [0, 1, 3])
    want = 0.7 * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(res.difference, want)
    torch.testing.assert_close(res.difference.flatten(1).norm(dim=1), torch.full((3,), 0.7))
    torch.testing.assert_close(res.perturbed, x + want)
    with torch.no_grad():
        logits = net(x).gather(1, torch.tensor([[0], [1], [3]]))[:, 0]
        final = net(res.perturbed).gather(1, torch.tensor([[0], [1], [3]]))[:, 0]
    torch.testing.assert_close(res.target_logits, torch.stack([logits, final]))


def test_every_step_has_length_alpha_before_clipping():
    net, x = _net(), torch.rand(2, 3, 2, 2) * 0.1
    asc = PullbackAscent(net, steps=1, alpha=0.3, clip=None)
    x_k = x
    for _ in range(4):
        x_k = asc.ascend(x_k, target=2).perturbed
    multi = PullbackAscent(net, steps=4, alpha=0.3, clip=None).ascend(x, target=2)
    torch.testing.assert_close(multi.perturbed, x_k)
    assert multi.target_logits.shape == (5, 2)
    assert bool((multi.target_logits[1:] > multi.target_logits[:-1]).all())


def test_projection_and_clamping_modes():
    net, x = _net(), torch.rand(2, 3, 2, 2) * 1.8 - 0.9
    proj = PullbackAscent(net, steps=5, alpha=2.0, eps=0.5, clip=None).ascend(x, target=1)
    torch.testing.assert_close(proj.difference.flatten(1).norm(dim=1), torch.full((2,), 0.5))
    never = PullbackAscent(net, steps=3, alpha=3.0, clip=None).attribute(x, target=1) + x
    every = PullbackAscent(net, steps=3, alpha=3.0, clip="every").attribute(x, target=1) + x
    last = PullbackAscent(net, steps=3, alpha=3.0, clip="last").attribute(x, target=1) + x
    assert never.abs().max() > 1
    torch.testing.assert_close(last, never.clamp(-1, 1))
    assert every.abs().max() <= 1 and not torch.allclose(every, last)


def test_gradient_ascent_is_the_cold_limit_of_pullback_ascent():
    net = _net().double()
    x = torch.rand(3, 3, 2, 2, dtype=torch.float64) - 0.5
    vanilla = GradientAscent(net, steps=3, alpha=0.5).ascend(x, target=[0, 2, 3])
    cold = PullbackAscent(net, steps=3, alpha=0.5, temperature=1e-9).ascend(x, target=[0, 2, 3])
    torch.testing.assert_close(cold.perturbed, vanilla.perturbed, rtol=1e-12, atol=1e-12)
    warm = PullbackAscent(net, steps=3, alpha=0.5).ascend(x, target=[0, 2, 3])
    assert not torch.allclose(warm.perturbed, vanilla.perturbed)


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"alpha": 0}, "alpha"),
    ({"alpha": float("nan")}, "alpha"), ({"eps": -1}, "eps"), ({"clip": "first"}, "clip"),
    ({"bounds": (1, -1)}, "bounds"), ({"bounds": None}, "bounds"), ({"temperature": 0}, "temperature"),
])
def test_ascent_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PullbackAscent(_net(), **kwargs)


def test_ascent_rejects_bad_inputs():
    asc = PullbackAscent(_net(), steps=1)
    x = torch.zeros(2, 3, 2, 2)
    with pytest.raises(ValueError, match="outside bounds"):
        asc.ascend(x + 1.5, target=0)
    with pytest.raises(ValueError, match="NaN"):
        asc.ascend(x.masked_fill(x == 0, float("nan")), target=0)
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        asc.ascend(x, target=[0, 4])
    with pytest.raises(ValueError, match="targets"):
        asc.ascend(x, target=[0, 1, 2])
    with pytest.raises(ValueError, match="batch"):
        asc.ascend(torch.zeros(5), target=0)
