"""Alignment measures against limits known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from whiteboxdl.stability.alignment import (
    checkpoint_consistency, cosine, path_kernel_alignment, pullback, temperature_sweep)
from whiteboxdl.stability.frozen import frozen_gate_gradient
from whiteboxdl.stability.patterns import record_patterns
from whiteboxdl.stability.store import PatternStore


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(),
                         nn.Linear(8, 3)).double().eval()


def test_cosine_reference():
    a, b = torch.randn(4, 2, 3), torch.randn(4, 2, 3)
    expected = [float(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))
                for u, v in zip(a.flatten(1).numpy(), b.flatten(1).numpy())]
    assert cosine(a, b) == pytest.approx(expected)
    assert cosine(torch.zeros(1, 3), torch.ones(1, 3)).tolist() == [0.0]


def test_temperature_limits():
    net = _mlp()
    x = torch.randn(16, 6, dtype=torch.float64)
    t = torch.randint(0, 3, (16,))
    sweep = temperature_sweep(net, x, t, temperatures=(1e-4,))
    assert sweep[1e-4]["mean"] == pytest.approx(1.0, abs=1e-6)      # T -> 0: vanilla gradient
    # T -> infinity: every gate 1/2, i.e. the all-open linear network's gradient (scaled)
    layers = record_patterns(net, x).layers
    ones = {l.name: np.ones((16, *l.shape), bool) for l in layers}
    linear = frozen_gate_gradient(net, x, t, layers, ones)
    assert cosine(pullback(net, x, t, temperature=1e6), linear).min() == pytest.approx(1.0, abs=1e-9)


def test_path_kernel_alignment_final_snapshot_is_vanilla():
    net = _mlp()
    x = torch.randn(12, 6, dtype=torch.float64)
    t = torch.randint(0, 3, (12,))
    store = PatternStore()
    store.add(0, record_patterns(_mlp(seed=1), x))       # an "early" model's pattern
    store.add(10, record_patterns(net, x))               # the final model's own pattern
    res = path_kernel_alignment(net, store, x, t, temperatures=(1e-4, 0.3), progress=False)
    assert res.steps == [0, 10]
    assert res.vanilla[1]["mean"] == pytest.approx(1.0)
    assert res.pullback[1e-4][1]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert res.vanilla[0]["mean"] < 0.999                # other gates: another gradient


def test_checkpoint_consistency_identical_checkpoints():
    net = _mlp()
    x = torch.randn(8, 6, dtype=torch.float64)
    t = torch.randint(0, 3, (8,))
    state = net.state_dict()
    other = _mlp(seed=2).state_dict()

    def make(s):
        m = _mlp()
        m.load_state_dict(s)
        return m

    res = checkpoint_consistency(make, {0: other, 5: state, 9: state}, x, t, progress=False)
    assert res.steps == [5, 9]
    assert res.pullback[1]["mean"] == pytest.approx(1.0) and res.vanilla[1]["mean"] == pytest.approx(1.0)
    assert res.pullback[0]["mean"] < 0.999
