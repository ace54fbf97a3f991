"""Attacks on a linear classifier reach exactly the analytic robust accuracy (see conftest)."""

from __future__ import annotations

import pytest
import torch

from whiteboxdl.robustness.attacks import attack, autoattack_cascade

EPS, EPS_L2 = 0.03, 0.25


def _robust(problem, x_adv, n=None):
    n = n or len(problem.y)
    x, y = problem.x[:n], problem.y[:n]
    with torch.no_grad():
        return (problem.margin(x, y) > 0) & (problem.model(x_adv).argmax(1) == y)


def _check_budget(x_adv, x, eps, norm):
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps + 1e-5


def test_reference_is_nontrivial(linear_problem):
    ref = linear_problem.robust(linear_problem.worst_linf(EPS))
    clean = linear_problem.margin(linear_problem.x, linear_problem.y) > 0
    # some inputs are wrong clean, some flip, some are robust: every case is exercised
    assert 0 < ref.sum() < clean.sum() < len(clean)


@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce", "apgd-t"])
def test_linf_attacks_reach_the_analytic_robust_accuracy(linear_problem, name):
    p = linear_problem
    x_adv = attack(p.model, p.x, p.y, EPS, name=name, norm="Linf", seed=0)
    _check_budget(x_adv, p.x, EPS, "Linf")
    assert torch.equal(_robust(p, x_adv), p.robust(p.worst_linf(EPS)))


def test_fab_t_reaches_the_analytic_robust_accuracy(linear_problem):
    p, n = linear_problem, 24
    x_adv = attack(p.model, p.x[:n], p.y[:n], EPS, name="fab-t")
    _check_budget(x_adv, p.x[:n], EPS, "Linf")
    assert torch.equal(_robust(p, x_adv, n), p.robust(p.worst_linf(EPS))[:n])


def test_square_never_beats_the_optimum_and_breaks_some(linear_problem):
    p, n = linear_problem, 40
    x_adv = attack(p.model, p.x[:n], p.y[:n], EPS, name="square", n_queries=200)
    _check_budget(x_adv, p.x[:n], EPS, "Linf")
    robust, ref = _robust(p, x_adv, n), p.robust(p.worst_linf(EPS))[:n]
    assert bool((robust >= ref).all())  # a black-box attack cannot break an unbreakable input
    clean = p.margin(p.x[:n], p.y[:n]) > 0
    assert robust.sum() < clean.sum()


@pytest.mark.parametrize("name", ["pgd", "apgd-ce"])
def test_l2_attacks_reach_the_analytic_robust_accuracy(linear_problem, name):
    p, n = linear_problem, 40
    x_adv = attack(p.model, p.x[:n], p.y[:n], EPS_L2, name=name, norm="L2")
    _check_budget(x_adv, p.x[:n], EPS_L2, "L2")
    assert torch.equal(_robust(p, x_adv, n), p.robust(p.worst_l2(EPS_L2))[:n])


def test_pgd_is_seeded(linear_problem):
    p = linear_problem
    a = attack(p.model, p.x, p.y, EPS, name="pgd", seed=3, steps=1)
    b = attack(p.model, p.x, p.y, EPS, name="pgd", seed=3, steps=1)
    c = attack(p.model, p.x, p.y, EPS, name="pgd", seed=4, steps=1)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.slow
def test_cascade_matches_official_standard_and_names_the_breaking_component(linear_problem):
    p, n = linear_problem, 12
    x, y = p.x[:n], p.y[:n]
    official = attack(p.model, x, y, EPS, name="standard", n_queries=50)
    x_adv, broken_by = autoattack_cascade(p.model, x, y, EPS, n_queries=50)
    assert torch.equal(x_adv, official)
    fooled = p.model(x_adv).argmax(1) != y
    clean = p.margin(x, y) > 0
    assert torch.equal(broken_by >= 0, fooled & clean)
    # on a linear model APGD-CE (component 0) already finds every breakable input
    assert set(broken_by[broken_by >= 0].tolist()) == {0}
    assert torch.equal(_robust(p, x_adv, n), p.robust(p.worst_linf(EPS))[:n])


def test_model_state_is_restored(linear_problem):
    p = linear_problem
    p.model.train()
    attack(p.model, p.x[:4], p.y[:4], EPS, name="fgsm")
    assert p.model.training and all(q.requires_grad for q in p.model.parameters())
    p.model.eval()


def test_autoattack_leaves_the_callers_random_stream_alone(linear_problem):
    p = linear_problem
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    attack(p.model, p.x, p.y, 0.1, name="apgd-ce", seed=7)  # pyautoattack re-seeds internally
    assert torch.equal(torch.rand(3), expected)
