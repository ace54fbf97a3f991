"""Small hand-built models for the quality tests (fast on 2 CPU cores)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class LinearImageModel(nn.Module):
    """f(x) = W·flatten(x) + b on (N, 1, 8, 8) images: gradient × input is exact for removals."""

    def __init__(self, classes: int = 3, side: int = 8, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.linear = nn.Linear(side * side, classes)
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(classes, side * side, generator=g))
            self.linear.bias.copy_(torch.randn(classes, generator=g))

    def forward(self, x):
        return self.linear(x.flatten(1))


def small_cnn(seed: int = 0, side: int = 28, classes: int = 10) -> nn.Module:
    """conv-relu-maxpool-conv-relu-linear, random init (explainers see ReLUs and a max-pool)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * (side // 2) ** 2, classes),
    ).eval()


@pytest.fixture
def linear_model():
    return LinearImageModel().eval()


@pytest.fixture
def cnn():
    return small_cnn()


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 1, 28, 28, generator=g), torch.tensor([3, 1, 7, 0])
