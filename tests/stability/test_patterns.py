"""Pattern recording: every ReLU form and max-pool is caught; window argmax round-trips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from whiteboxdl.stability.patterns import PoolGeometry, record_patterns


class FunctionalNet(nn.Module):
    """Uses every functional ReLU form and both max-pool forms, plus one module ReLU."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.fc = nn.Linear(3 * 2 * 2, 4)

    def forward(self, x):
        self.pre = []
        z = self.conv(x)
        self.pre.append(z.clone())
        a = F.relu(z)
        self.pre.append((a - 0.3).clone())
        b = torch.relu(a - 0.3)
        self.pre.append((b - 0.1).clone())
        c = (b - 0.1).relu()
        p, _ = F.max_pool2d(c, 2, return_indices=True)
        self.pre.append((p - 0.2).clone())
        d = torch.relu_(p - 0.2)
        self.pre.append((d - 0.05).clone())
        e = (d - 0.05).relu_()
        q = F.max_pool2d(e, 2, padding=0)
        h = self.fc(q.flatten(1))
        self.pre.append(h.clone())
        return self.act(h)


def test_catches_functional_relus_and_pools():
    net = FunctionalNet()
    x = torch.randn(6, 1, 8, 8)
    snap = record_patterns(net, x, batch_size=4)
    kinds = [layer.kind for layer in snap.layers]
    assert kinds == ["relu", "relu", "relu", "maxpool", "relu", "relu", "maxpool", "relu"]
    assert len({layer.name for layer in snap.layers}) == len(snap.layers)
    assert snap.layers[-1].name == "act"
    # independent reference: the pre-activations the model stores itself
    net.eval()
    with torch.no_grad():
        net(x)
    relus = [layer for layer in snap.layers if layer.kind == "relu"]
    for layer, z in zip(relus, net.pre):
        assert (snap.values[layer.name] == (z > 0).numpy()).all(), layer.name


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1)),
    dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=2, stride=[]),
])
def test_pool_local_index_round_trips(kwargs):
    x = torch.randn(2, 3, 9, 11)
    stride = kwargs.get("stride", None)
    call = dict(kwargs, stride=None if stride == [] else stride)
    _, idx = F.max_pool2d(x, **call, return_indices=True)
    geometry = PoolGeometry.from_call((x,), kwargs)
    local = geometry.local_index(idx)
    kh, kw = geometry.kernel
    assert local.dtype == torch.uint8 and int(local.max()) < kh * kw
    assert torch.equal(geometry.flat_index(local), idx)


def test_pool_argmax_matches_torch():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2))
    x = torch.randn(3, 1, 9, 9)
    snap = record_patterns(net, x)
    layer = snap.layers[0]
    _, idx = F.max_pool2d(net[0](x), 2, return_indices=True)
    flat = layer.geometry.flat_index(torch.as_tensor(snap.values[layer.name]))
    assert torch.equal(flat, idx)


def test_margins_are_abs_z_over_layer_std():
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU())
    x = torch.randn(7, 3)
    snap = record_patterns(net, x, margins=True)
    z = net[0](x).detach()
    expected = (z.abs() / z.std()).numpy()
    assert abs(snap.margins["1"].astype(float) - expected).max() < 2e-3 * expected.max()


def test_model_mode_restored_and_bad_input():
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU()).train()
    record_patterns(net, torch.randn(2, 3))
    assert net.training
    with pytest.raises(ValueError, match="non-empty"):
        record_patterns(net, torch.randn(0, 3))
