"""Recomputed pre-activations (BatchNorm, residual additions) equal stored ones bit for bit."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from whiteboxdl.pullbacks import excitation_pullbacks
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
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
    return model.eval()


def _pullback(model, x, recompute):
    x = x.clone().requires_grad_()
    with excitation_pullbacks(recompute=recompute):
        (g,) = torch.autograd.grad(model(x)[:, 1].sum(), x)
    return g


def test_recompute_equals_stored_on_residual_block():
    for mutate in (False, True):
        model = _randomise_bn(Block(mutate))
        x = torch.randn(2, 3, 6, 6)
        assert torch.equal(_pullback(model, x, True), _pullback(model, x, False))


@pytest.mark.slow
def test_recompute_equals_stored_on_torchvision_resnet18_and_densenet():
    torch.manual_seed(0)
    for model in (torchvision.models.resnet18(num_classes=5),
                  torchvision.models.densenet121(num_classes=5)):
        model = _randomise_bn(model)
        x = torch.rand(1, 3, 32, 32) * 2 - 1
        assert torch.equal(_pullback(model, x, True), _pullback(model, x, False))


def test_recipes_are_used_and_nothing_is_saved(monkeypatch):
    """With recompute on, every ReLU of the residual block skips saving its pre-activation."""
    saved = []
    original = SoftGate.forward

    def spy(ctx, z, op, gate, temperature, inplace, recompute=None):
        saved.append(recompute is None)
        return original(ctx, z, op, gate, temperature, inplace, recompute)

    monkeypatch.setattr(SoftGate, "forward", staticmethod(spy))
    model = _randomise_bn(Block())
    _pullback(model, torch.randn(2, 3, 6, 6), True)
    assert saved == [False, False]
    saved.clear()
    _pullback(_randomise_bn(Block(mutate=True)), torch.randn(2, 3, 6, 6), True)
    assert saved == [False, True]       # in-place change: the second ReLU stores z


def test_recipe_invalidated_by_inplace_change():
    bn = _randomise_bn(nn.BatchNorm1d(4))
    x = torch.randn(3, 4, requires_grad=True)
    with excitation_pullbacks():
        y = bn(x)
        assert recipe_of(y) is not None
        torch.testing.assert_close(recipe_of(y)(), y)
        y.add_(1)
        assert recipe_of(y) is None
