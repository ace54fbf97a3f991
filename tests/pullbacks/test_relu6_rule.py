"""The ReLU6 / hardtanh rule: every spelling caught, forward bit-identical, backward
``grad * (g((z - lo)/T) - g((z - hi)/T))`` against the formula in float64, the T -> 0 and
T -> inf limits on ReLU6 itself, tiny networks against hand-written pullbacks, the BatchNorm
recompute route, and on by default."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from whiteboxdl.pullbacks import UnhandledOpWarning, excitation_pullbacks
from whiteboxdl.pullbacks.gates import SoftGate
from whiteboxdl.pullbacks.registry import get_rule

#: (call, lo, hi, modifies its input)
SPELLINGS = {
    "nn.ReLU6": (lambda z: nn.ReLU6()(z), 0.0, 6.0, False),
    "nn.ReLU6(inplace)": (lambda z: nn.ReLU6(inplace=True)(z), 0.0, 6.0, True),
    "F.relu6": (lambda z: F.relu6(z), 0.0, 6.0, False),
    "F.relu6(inplace)": (lambda z: F.relu6(z, inplace=True), 0.0, 6.0, True),
    "nn.Hardtanh": (lambda z: nn.Hardtanh(-2.0, 3.0)(z), -2.0, 3.0, False),
    "nn.Hardtanh(inplace)": (lambda z: nn.Hardtanh(-2.0, 3.0, inplace=True)(z), -2.0, 3.0, True),
    "F.hardtanh": (lambda z: F.hardtanh(z, -1.5, 2.5), -1.5, 2.5, False),
    "F.hardtanh(keywords)": (lambda z: F.hardtanh(z, max_val=4.0, min_val=0.5), 0.5, 4.0, False),
    "F.hardtanh(default)": (lambda z: F.hardtanh(z), -1.0, 1.0, False),
    "F.hardtanh(inplace)": (lambda z: F.hardtanh(z, 0.0, 6.0, True), 0.0, 6.0, True),
    "F.hardtanh_": (lambda z: F.hardtanh_(z, -1.0, 2.0), -1.0, 2.0, True),
    "torch._C._nn.relu6": (lambda z: torch._C._nn.relu6(z), 0.0, 6.0, False),
    "torch._C._nn.relu6_": (lambda z: torch._C._nn.relu6_(z), 0.0, 6.0, True),
    "torch._C._nn.hardtanh": (lambda z: torch._C._nn.hardtanh(z, -0.5, 1.0), -0.5, 1.0, False),
    "torch._C._nn.hardtanh_": (lambda z: torch._C._nn.hardtanh_(z, -0.5, 1.0), -0.5, 1.0, True),
}


def _z(seed=0, n=400):
    # covers both kinks and both flat parts of every (lo, hi) above
    return (torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            * 3 + 1.5)


def _sigmoid_gate(z, lo, hi, T):
    return torch.sigmoid((z - lo) / T) - torch.sigmoid((z - hi) / T)


def _normal_gate(z, lo, hi, T):
    phi = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64),
                                     torch.tensor(1.0, dtype=torch.float64)).cdf
    return phi((z - lo) / T) - phi((z - hi) / T)


def _run(call, inplace, z0, grad, **settings):
    leaf = z0.clone().requires_grad_()
    z = leaf * 1.0 if inplace else leaf             # an in-place op needs a non-leaf input
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnhandledOpWarning)
        with excitation_pullbacks(**settings):
            out = call(z)
    (g,) = torch.autograd.grad(out, leaf, grad)
    return out.detach(), g


@pytest.mark.parametrize("name", SPELLINGS)
@pytest.mark.parametrize("gate", ["sigmoid", "normal"])
def test_every_spelling_forward_identical_backward_analytic(name, gate):
    call, lo, hi, inplace = SPELLINGS[name]
    z0 = _z()
    grad = torch.randn(z0.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    plain = call(z0.clone())
    formula = _sigmoid_gate if gate == "sigmoid" else _normal_gate
    for T in (0.3, 1.0, 2.5):
        out, g = _run(call, inplace, z0, grad, gate=gate, relu6_temperature=T)
        assert torch.equal(out, plain)
        torch.testing.assert_close(g, grad * formula(z0, lo, hi, T), rtol=1e-10, atol=1e-13)


def test_relu6_cold_limit_is_the_vanilla_gradient_and_hot_limit_zero():
    z0 = _z(1)
    grad = torch.randn_like(z0)
    leaf = z0.clone().requires_grad_()
    (vanilla,) = torch.autograd.grad(F.relu6(leaf), leaf, grad)
    _, cold = _run(F.relu6, False, z0, grad, relu6_temperature=1e-9)
    torch.testing.assert_close(cold, vanilla, rtol=0, atol=0)
    assert 0 < (vanilla != 0).float().mean() < 1          # both regimes present
    _, hot = _run(F.relu6, False, z0, grad, relu6_temperature=1e12)
    # (1 - e^(-6/T)) * sigmoid(x) * sigmoid(6/T - x) ~ 1.5e-12 at T = 1e12: the limit is 0
    assert hot.abs().max() < 1e-11 * grad.abs().max()
    _, warm = _run(F.relu6, False, z0, grad, relu6_temperature=1e6)
    torch.testing.assert_close(warm, grad * 0.25 * 6e-6, rtol=1e-4, atol=0)   # first order in 1/T


def test_temperature_is_its_own_option():
    """The ReLU temperature does not move the ReLU6 gate, and vice versa."""
    z0, grad = _z(2), torch.ones(400, dtype=torch.float64)
    _, a = _run(F.relu6, False, z0, grad, temperature=0.1, relu6_temperature=2.0)
    _, b = _run(F.relu6, False, z0, grad, temperature=5.0, relu6_temperature=2.0)
    assert torch.equal(a, b)
    torch.testing.assert_close(a, _sigmoid_gate(z0, 0, 6, 2.0), rtol=1e-12, atol=1e-14)
    assert get_rule("relu6").default and get_rule("relu6").temperature.name == "relu6_temperature"


class LiteBlock(nn.Module):
    """EfficientNet-Lite's pattern: conv-BN-ReLU6(in-place), depthwise conv-BN-ReLU6, 1x1 conv-BN,
    a residual sum, then a linear head."""

    def __init__(self, c=3):
        super().__init__()
        self.expand, self.b0 = nn.Conv2d(c, 2 * c, 1, bias=False), nn.BatchNorm2d(2 * c)
        self.dw, self.b1 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c, bias=False), \
            nn.BatchNorm2d(2 * c)
        self.project, self.b2 = nn.Conv2d(2 * c, c, 1, bias=False), nn.BatchNorm2d(c)
        self.act = nn.ReLU6(inplace=True)
        self.fc = nn.Linear(c * 25, 4)

    def forward(self, x):
        y = self.act(self.b0(self.expand(x)))
        y = self.act(self.b1(self.dw(y)))
        y = self.b2(self.project(y)) + x
        return self.fc(y.flatten(1))


def _randomise_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(m.weight, 1.5, 1.0)
            nn.init.normal_(m.bias, 2.0, 2.0)             # pre-activations on both kinks
    return model.eval()


def _bn(m, t):
    return (t - m.running_mean.view(1, -1, 1, 1)) / (m.running_var.view(1, -1, 1, 1) + m.eps).sqrt() \
        * m.weight.view(1, -1, 1, 1) + m.bias.view(1, -1, 1, 1)


def test_tiny_lite_block_equals_the_hand_written_pullback_float64():
    """x -> the pullback with every ReLU6 Jacobian replaced by diag(gate(z)): written out layer by
    layer with autograd over linear maps only."""
    torch.manual_seed(0)
    model = _randomise_bn(LiteBlock()).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    T = 0.7
    with torch.no_grad():
        z0 = _bn(model.b0, model.expand(x))
        z1 = _bn(model.b1, model.dw(z0.clamp(0, 6)))
    gate0, gate1 = _sigmoid_gate(z0, 0, 6, T), _sigmoid_gate(z1, 0, 6, T)
    xs = x.clone().requires_grad_()
    # the same network with the ReLU6s replaced by linear maps carrying the frozen gates
    y = _bn(model.b0, model.expand(xs)) * gate0
    y = _bn(model.b1, model.dw(y)) * gate1
    out = model.fc((_bn(model.b2, model.project(y)) + xs).flatten(1))
    (want,) = torch.autograd.grad(out[:, 2].sum(), xs)
    for recompute in (True, False):
        xs = x.clone().requires_grad_()
        with excitation_pullbacks(relu6_temperature=T, recompute=recompute):
            (got,) = torch.autograd.grad(model(xs)[:, 2].sum(), xs)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)


def test_lite_block_uses_the_batchnorm_route_and_matches_stored(monkeypatch):
    torch.manual_seed(1)
    model = _randomise_bn(LiteBlock()).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)

    def grads(recompute):
        model.zero_grad()
        xs = x.clone().requires_grad_()
        with excitation_pullbacks(recompute=recompute):
            model(xs)[:, 1].sum().backward()
        return [xs.grad] + [p.grad for p in model.parameters()]

    for fast, stored in zip(grads(True), grads(False)):
        torch.testing.assert_close(fast, stored, rtol=1e-12, atol=1e-14)
    calls = []
    original = SoftGate.forward

    def spy(ctx, z, op, gate, temperature, inplace, recompute=None, *inputs):
        calls.append((recompute is not None, len(inputs), inplace))
        return original(ctx, z, op, gate, temperature, inplace, recompute, *inputs)

    monkeypatch.setattr(SoftGate, "forward", staticmethod(spy))
    grads(True)
    assert calls == [(True, 5, True), (True, 5, True)]    # both ReLU6s: recomputed from BatchNorm


def test_on_by_default_and_other_rules_untouched():
    """A default context softens ReLU6; ``rules=("relu",)`` leaves it vanilla and warns."""
    z0 = _z(3)
    grad = torch.ones_like(z0)
    _, soft = _run(F.relu6, False, z0, grad)
    torch.testing.assert_close(soft, _sigmoid_gate(z0, 0, 6, get_rule("relu6").temperature.default),
                               rtol=1e-12, atol=1e-14)
    leaf = z0.clone().requires_grad_()
    with pytest.warns(UnhandledOpWarning, match=r"'relu6' rule handles it"):
        with excitation_pullbacks(rules=("relu",)):
            out = F.relu6(leaf)
    (g,) = torch.autograd.grad(out, leaf, grad)
    assert torch.equal(g, ((z0 > 0) & (z0 < 6)).double())


def test_bad_bounds_are_a_value_error():
    with pytest.raises(ValueError, match="min_val"):
        with excitation_pullbacks():
            F.hardtanh(torch.randn(3, requires_grad=True), 2.0, 1.0)


def test_channel_scale_uses_each_channels_batchnorm_spread():
    """``relu6_scale="channel"``: T_c = T * |weight_c| * sqrt(var_c / (var_c + eps)), the spread
    of the pre-activation; a ReLU6 not fed by a BatchNorm keeps the fixed T."""
    torch.manual_seed(3)
    bn = _randomise_bn(nn.BatchNorm2d(4)).double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    T = 0.8
    with excitation_pullbacks(relu6_scale="channel", relu6_temperature=T):
        (got,) = torch.autograd.grad(F.relu6(bn(x)).sum(), x)
    with torch.no_grad():
        z = _bn(bn, x)
        var, w = bn.running_var.view(1, -1, 1, 1), bn.weight.view(1, -1, 1, 1)
        spread = w.abs() * (var / (var + bn.eps)).sqrt()
    scale = w / (var + bn.eps).sqrt()                      # dz/dx of the BatchNorm
    torch.testing.assert_close(got, _sigmoid_gate(z, 0, 6, T * spread) * scale, rtol=1e-10,
                               atol=1e-13)
    z0, grad = _z(4), torch.ones(400, dtype=torch.float64)
    _, plain = _run(F.relu6, False, z0, grad, relu6_scale="channel", relu6_temperature=T)
    torch.testing.assert_close(plain, _sigmoid_gate(z0, 0, 6, T), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="relu6_scale"):
        excitation_pullbacks(relu6_scale="per-pixel")
