"""A linear binary classifier on 1x6x6 images in [0, 1]: its worst perturbations are analytic.

The margin of the true class is ``s * (v . x + c)`` with ``v = w1 - w0``, ``c = b1 - b0`` and
``s = +1`` for label 1, ``-1`` for label 0. Under L-inf the minimising perturbation moves every
pixel by ``eps`` against ``s * v`` and clips to the box; under L2 it is
``clip(-t * s * v, -x, 1 - x)`` with the ``t >= 0`` that makes its norm ``eps`` (KKT of a linear
objective over ball and box).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn


@dataclass
class LinearProblem:
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    v: torch.Tensor
    c: float

    def margin(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = y.double() * 2 - 1
        return s * (x.flatten(1).double() @ self.v + self.c)

    def worst_linf(self, eps: float, x=None, y=None) -> torch.Tensor:
        x = self.x if x is None else x
        y = self.y if y is None else y
        sv = (y.double() * 2 - 1)[:, None] * self.v[None]
        flat = x.flatten(1).double()
        worst = torch.where(sv > 0, (flat - eps).clamp(min=0), (flat + eps).clamp(max=1))
        return worst.float().view_as(x)

    def worst_l2(self, eps: float) -> torch.Tensor:
        sv = (self.y.double() * 2 - 1)[:, None] * self.v[None]
        flat = self.x.flatten(1).double()
        lo, hi = -flat, 1 - flat
        t_lo = torch.zeros(len(flat), 1, dtype=torch.float64)
        t_hi = torch.full_like(t_lo, 1e3)
        for _ in range(200):  # bisection on t: ||clip(-t sv)|| is non-decreasing in t
            t = (t_lo + t_hi) / 2
            norm = torch.maximum(torch.minimum(-t * sv, hi), lo).norm(dim=1, keepdim=True)
            too_far = norm > eps
            t_hi = torch.where(too_far, t, t_hi)
            t_lo = torch.where(too_far, t_lo, t)
        delta = torch.maximum(torch.minimum(-t_lo * sv, hi), lo)
        return (flat + delta).float().view_as(self.x)

    def robust(self, x_worst: torch.Tensor) -> torch.Tensor:
        return (self.margin(self.x, self.y) > 0) & (self.margin(x_worst, self.y) > 0)


def make_linear_problem(n: int = 160, eps: float = 0.03, eps_l2: float = 0.25, gap: float = 0.06,
                        seed: int = 0) -> LinearProblem:
    """Points whose clean and worst-case margins are at least ``gap`` away from 0."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, 36, generator=g) * 0.7)
        v = (model[1].weight[1] - model[1].weight[0]).double()
        model[1].bias.copy_(torch.tensor([0.0, float(-0.5 * v.sum())]))
    c = float((model[1].bias[1] - model[1].bias[0]).detach())
    x = torch.rand(8 * n, 1, 6, 6, generator=g)
    y = ((x.flatten(1).double() @ v + c) > 0).long()
    flip = torch.rand(len(y), generator=g) < 0.1  # some inputs are misclassified clean
    y = torch.where(flip, 1 - y, y)
    p = LinearProblem(model.eval(), x, y, v, c)
    keep = ((p.margin(x, y).abs() > gap) & (p.margin(p.worst_linf(eps), y).abs() > gap)
            & (p.margin(p.worst_l2(eps_l2), y).abs() > gap))
    idx = keep.nonzero().squeeze(1)[:n]
    return LinearProblem(model.eval(), x[idx], y[idx], v, c)


@pytest.fixture(scope="session")
def linear_problem() -> LinearProblem:
    return make_linear_problem()
