"""Tiny hand-set networks shared by the stability tests."""

from __future__ import annotations

import torch
from torch import nn

#: Biases of the 1→3 ReLU layer at steps 0, 10, 20, 30 (weights all 1); probe x = -1 and +1.
BIASES = {0: [0.5, -0.5, 2.0], 10: [1.5, -0.5, 2.0], 20: [1.5, -1.5, 2.0], 30: [0.5, -1.5, 2.0]}
PROBE = torch.tensor([[-1.0], [1.0]])


def hand_net(bias) -> nn.Sequential:
    """Linear(1→3) with unit weights and the given biases, ReLU, Linear(3→2)."""
    net = nn.Sequential(nn.Linear(1, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.copy_(torch.tensor(bias))
        net[2].weight.copy_(torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0]]))
        net[2].bias.zero_()
    return net
