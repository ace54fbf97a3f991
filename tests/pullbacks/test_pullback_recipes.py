"""Recomputed pre-activations (BatchNorm, residual additions) equal stored ones bit for bit, and
the gate's gradient handed straight to the BatchNorm inputs and parameters (the recipe's terms)
equals the one autograd computes through the BatchNorm and addition nodes."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from whiteboxdl.pullbacks import excitation_pullbacks
from whiteboxdl.pullbacks import recipes
from whiteboxdl.pullbacks.gates import SoftGate
from whiteboxdl.pullbacks.recipes import recipe_of


class Block(nn.Module):
    """conv-BN-ReLU(in-place) and a residual `out += identity` followed by ReLU, as in ResNet."""

    def __init__(self, mutate: bool = False):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.c2, self.b2 = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)
        self.mutate = mutate
        self.fc = nn.Linear(3 * 6 * 6, 4)

    def forward(self, x):
        out = self.relu(self.b1(self.c1(x)))
        out = self.b2(self.c2(out))
        if self.mutate:
            out.mul_(1.5)                      # invalidates the BatchNorm recipe
        out += x
        return self.fc(self.relu(out).flatten(1))


def _randomise_bn(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            if m.affine:
                nn.init.normal_(m.weight)
                nn.init.normal_(m.bias)
    return model.eval()


def _pullback(model, x, recompute):
    x = x.clone().requires_grad_()
    with excitation_pullbacks(recompute=recompute):
        (g,) = torch.autograd.grad(model(x)[:, 1].sum(), x)
    return g


def _all_grads(model, x, recompute):
    """Input and parameter gradients of a pullback through ``.backward()``."""
    model.zero_grad()
    x = x.clone().requires_grad_()
    with excitation_pullbacks(recompute=recompute):
        model(x)[:, 1].sum().backward()
    return [x.grad] + [p.grad for p in model.parameters()]


def test_recompute_equals_stored_on_residual_block():
    """float64: the input and every parameter gradient equal the stored-pre-activation path,
    where autograd runs the BatchNorm and addition nodes."""
    for mutate in (False, True):
        model = _randomise_bn(Block(mutate)).double()
        x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
        for fast, stored in zip(_all_grads(model, x, True), _all_grads(model, x, False)):
            torch.testing.assert_close(fast, stored, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(_pullback(model, x, True), _pullback(model, x, False),
                                   rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_recompute_equals_stored_on_torchvision_resnet18_and_densenet():
    torch.manual_seed(0)
    for model in (torchvision.models.resnet18(num_classes=5),
                  torchvision.models.densenet121(num_classes=5)):
        model = _randomise_bn(model).double()
        x = torch.rand(1, 3, 32, 32, dtype=torch.float64) * 2 - 1
        torch.testing.assert_close(_pullback(model, x, True), _pullback(model, x, False),
                                   rtol=1e-10, atol=1e-14)


def test_recipes_are_used_and_nothing_is_saved(monkeypatch):
    """With recompute on, every ReLU of the residual block skips saving its pre-activation and
    sends its gradient to the recipe's tensors."""
    calls = []
    original = SoftGate.forward

    def spy(ctx, z, op, gate, temperature, inplace, recompute=None, *inputs):
        calls.append((recompute is None, len(inputs)))
        return original(ctx, z, op, gate, temperature, inplace, recompute, *inputs)

    monkeypatch.setattr(SoftGate, "forward", staticmethod(spy))
    model = _randomise_bn(Block())
    _pullback(model, torch.randn(2, 3, 6, 6), True)
    assert calls == [(False, 5), (False, 6)]     # BatchNorm: 5 tensors; + identity: 6
    calls.clear()
    _pullback(_randomise_bn(Block(mutate=True)), torch.randn(2, 3, 6, 6), True)
    assert calls == [(False, 5), (True, 0)]      # in-place change: the second ReLU stores z


class Branches(nn.Module):
    """Out-of-place ReLUs whose pre-activation has a second consumer, BatchNorm without affine
    parameters, 1d and 3d BatchNorm, and a broadcast residual (no direct pullback: stays on z)."""

    def __init__(self):
        super().__init__()
        self.b1 = nn.BatchNorm1d(4)
        self.b2 = nn.BatchNorm1d(4, affine=False)
        self.b3 = nn.BatchNorm3d(2)
        self.shift = nn.Parameter(torch.randn(4, 1))

    def forward(self, x, v):
        z = self.b1(x)                                # (N, 4, L)
        a = torch.relu(z) + z.tanh()                 # z used twice
        b = torch.relu(self.b2(x) + self.shift)      # broadcast add: gradient through z
        c = torch.relu(self.b3(v)).sum((2, 3, 4))    # (N, 2)
        return torch.cat([(a * b).sum(2), c], 1)


def test_direct_pullback_with_shared_broadcast_and_unaffine_terms():
    torch.manual_seed(1)
    model = _randomise_bn(Branches()).double()
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    v = torch.randn(3, 2, 2, 3, 2, dtype=torch.float64)

    def grads(recompute):
        model.zero_grad()
        xs, vs = x.clone().requires_grad_(), v.clone().requires_grad_()
        with excitation_pullbacks(recompute=recompute):
            (model(xs, vs) * torch.arange(1.0, 7.0, dtype=torch.float64)).sum().backward()
        return [xs.grad, vs.grad] + [p.grad for p in model.parameters()]

    for fast, stored in zip(grads(True), grads(False)):
        torch.testing.assert_close(fast, stored, rtol=1e-12, atol=1e-14)

    def by_autograd_grad(recompute):        # leaf inputs straight into BatchNorm, and a weight
        xs, vs = x.clone().requires_grad_(), v.clone().requires_grad_()
        with excitation_pullbacks(recompute=recompute):
            return torch.autograd.grad(model(xs, vs).sum(), [xs, vs, model.b1.weight])

    for fast, stored in zip(by_autograd_grad(True), by_autograd_grad(False)):
        torch.testing.assert_close(fast, stored, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation, rule", [(nn.SiLU(), "silu"), (nn.GELU(), "gelu")])
def test_direct_pullback_for_silu_and_gelu_gates(activation, rule):
    """The later revision's gates on a BatchNorm pre-activation: same routing as through z."""
    torch.manual_seed(2)
    model = _randomise_bn(nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), activation,
                                        nn.Flatten(), nn.Linear(3 * 16, 2))).double()
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)

    def grads(recompute):
        model.zero_grad()
        xs = x.clone().requires_grad_()
        with excitation_pullbacks(rules=(rule,), recompute=recompute):
            model(xs)[:, 0].sum().backward()
        return [xs.grad] + [p.grad for p in model.parameters()]

    for fast, stored in zip(grads(True), grads(False)):
        torch.testing.assert_close(fast, stored, rtol=1e-12, atol=1e-14)


def test_parameter_gradients_only_when_this_backward_needs_them(monkeypatch):
    """``autograd.grad`` for the input skips the BatchNorm parameters' gradients (the reductions
    vanilla autograd skips too); asking for a parameter or calling ``.backward()`` computes them."""
    wanted = []
    original = recipes.BatchNormTerm.pullback

    def spy(self, grad, tensors, want):
        wanted.append((bool(want[0]), bool(want[3]), bool(want[4])))
        return original(self, grad, tensors, want)

    monkeypatch.setattr(recipes.BatchNormTerm, "pullback", spy)
    model = _randomise_bn(Block())
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    with excitation_pullbacks():
        torch.autograd.grad(model(x)[:, 1].sum(), x)
        assert wanted == [(True, False, False)] * 2
        wanted.clear()
        (gw,) = torch.autograd.grad(model(x)[:, 1].sum(), model.b2.weight)
        assert wanted == [(False, True, False)]   # only b2's gate runs, for b2.weight only
        wanted.clear()
        model(x)[:, 1].sum().backward()
        assert wanted == [(True, True, True)] * 2
    torch.testing.assert_close(gw, model.b2.weight.grad)


def test_recipe_invalidated_by_inplace_change():
    bn = _randomise_bn(nn.BatchNorm1d(4))
    x = torch.randn(3, 4, requires_grad=True)
    with excitation_pullbacks():
        y = bn(x)
        assert recipe_of(y) is not None
        torch.testing.assert_close(recipe_of(y)(), y)
        y.add_(1)
        assert recipe_of(y) is None
