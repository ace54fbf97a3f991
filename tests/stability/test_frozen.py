"""Frozen-gate gradients against the analytic product W₁ᵀD₁W₂ᵀD₂w (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from whiteboxdl.stability.frozen import FrozenGates, frozen_gate_gradient, input_gradient
from whiteboxdl.stability.patterns import record_patterns


def test_mlp_matches_analytic_product():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(),
                        nn.Linear(6, 3)).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    target = torch.tensor([0, 2, 1, 2])
    layers = record_patterns(net, x).layers
    rng = np.random.default_rng(1)
    pattern = {"1": rng.random((4, 7)) > 0.5, "3": rng.random((4, 6)) > 0.5}
    got = frozen_gate_gradient(net, x, target, layers, pattern)
    w1, w2, w3 = net[0].weight, net[2].weight, net[4].weight
    for i in range(4):
        d1 = torch.diag(torch.as_tensor(pattern["1"][i], dtype=torch.float64))
        d2 = torch.diag(torch.as_tensor(pattern["3"][i], dtype=torch.float64))
        expected = w1.T @ d1 @ w2.T @ d2 @ w3[target[i]]
        torch.testing.assert_close(got[i], expected.detach(), rtol=1e-12, atol=1e-12)
    # the forward is untouched inside the context
    with FrozenGates(layers, pattern):
        out = net(x)
    torch.testing.assert_close(out, net(x))


class PoolNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2 * 3 * 3, 3)

    def forward(self, x):
        h = F.max_pool2d(torch.relu(self.bn(self.conv(x))), 3, stride=2, padding=1)
        return self.fc(h.relu_().flatten(1))


def _reference(net, x, relu_mask, pool_local, geometry, relu2_mask):
    """Independent path-linear model: mask·z for ReLUs, gather at the stored argmax for pools."""
    z = net.bn(net.conv(x)) * relu_mask
    flat = geometry.flat_index(pool_local)
    pooled = z.flatten(2).gather(2, flat.flatten(2)).view(flat.shape)
    return net.fc((pooled * relu2_mask).flatten(1))


def test_cnn_with_pool_matches_path_linear_reference():
    torch.manual_seed(0)
    net = PoolNet().double()
    net.bn.running_mean.uniform_(-0.2, 0.2)
    net.bn.running_var.uniform_(0.5, 2.0)
    net.eval()
    x = torch.randn(3, 1, 6, 6, dtype=torch.float64)
    target = torch.tensor([2, 0, 1])
    layers = record_patterns(net, x).layers
    assert [l.kind for l in layers] == ["relu", "maxpool", "relu"]
    g = torch.Generator().manual_seed(3)
    pattern = {layers[0].name: torch.rand(3, 2, 6, 6, generator=g) > 0.5,
               layers[1].name: torch.randint(0, 9, (3, 2, 3, 3), generator=g).to(torch.uint8),
               layers[2].name: torch.rand(3, 2, 3, 3, generator=g) > 0.5}
    # keep argmax positions inside the unpadded image (padding can never win a max)
    geometry = layers[1].geometry
    flat = geometry.flat_index(pattern[layers[1].name])
    ok = (flat >= 0) & (flat < 36)
    pattern[layers[1].name] = torch.where(ok, pattern[layers[1].name], torch.full_like(
        pattern[layers[1].name], 4))
    got = frozen_gate_gradient(net, x, target, layers, {k: v.numpy() for k, v in pattern.items()})
    xr = x.clone().requires_grad_(True)
    out = _reference(net, xr, pattern[layers[0].name].double(), pattern[layers[1].name], geometry,
                     pattern[layers[2].name].double())
    (expected,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), xr)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_own_pattern_gives_vanilla_gradient():
    torch.manual_seed(1)
    net = PoolNet().eval()
    x = torch.randn(5, 1, 6, 6)
    target = torch.tensor([0, 1, 2, 0, 1])
    snap = record_patterns(net, x)
    torch.testing.assert_close(frozen_gate_gradient(net, x, target, snap.layers, snap.values,
                                                    batch_size=2),
                               input_gradient(net, x, target))


def test_mismatched_pattern_is_rejected():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = torch.randn(2, 3)
    layers = record_patterns(net, x).layers
    with pytest.raises(ValueError, match="shape"):
        frozen_gate_gradient(net, torch.randn(2, 3), torch.zeros(2, dtype=torch.long), layers,
                             {"1": np.ones((2, 5), bool)})
    with pytest.raises(ValueError, match="target"):
        input_gradient(net, x, torch.zeros(3, dtype=torch.long))
