"""ART's Boundary attack finds close to the minimal L2 perturbation of a linear classifier."""

from __future__ import annotations

import torch

from whiteboxdl.robustness.attacks import attack


def test_boundary_is_adversarial_and_near_minimal(linear_problem):
    p = linear_problem
    # inputs whose analytic minimal perturbation -m v / |v|^2 stays inside the box
    step = (-p.margin(p.x, p.y) / p.v.norm() ** 2)[:, None] * (p.y.double() * 2 - 1)[:, None] * p.v
    inside = ((p.x.flatten(1).double() + 1.05 * step).clamp(0, 1) == p.x.flatten(1).double()
              + 1.05 * step).all(1) & (p.margin(p.x, p.y) > 0)
    idx = inside.nonzero().squeeze(1)[:2]
    assert len(idx) == 2
    x, y = p.x[idx], p.y[idx]
    x_adv = attack(p.model, x, y, None, name="boundary", seed=0, max_iter=60)
    assert torch.all(p.model(x_adv).argmax(1) != y)  # adversarial
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    found = (x_adv - x).flatten(1).norm(dim=1).double()
    optimum = step[idx].norm(dim=1)
    assert torch.all(found >= optimum * 0.999)  # cannot beat the analytic minimum
    assert torch.all(found <= optimum * 1.15)  # and gets close to it
    again = attack(p.model, x, y, None, name="boundary", seed=0, max_iter=60)
    assert torch.equal(again, x_adv)  # seeded
