"""Bad arguments raise ValueError naming the offending value."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from whiteboxdl.robustness.attacks import attack, available_attacks
from whiteboxdl.robustness.evaluate import evaluate


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    return model, torch.rand(4, 1, 4, 4), torch.tensor([0, 1, 0, 1])


def _with_pixel(x, value):
    x = x.clone()
    x[1, 0, 2, 3] = value
    return x


@pytest.mark.parametrize("make_bad, match", [
    (lambda x: _with_pixel(x, 1.5), r"\[0, 1\].*1\.5"),
    (lambda x: _with_pixel(x, -0.25), r"\[0, 1\].*-0\.25"),
    (lambda x: _with_pixel(x, float("nan")), "1 non-finite"),
    (lambda x: (x * 255).long(), "floating-point"),
    (lambda x: x[0], r"match x \(1, 4, 4\), got \(4,\)"),
])
def test_bad_x(setup, make_bad, match):
    model, x, y = setup
    with pytest.raises(ValueError, match=match):
        attack(model, make_bad(x), y, 0.1, name="fgsm")


@pytest.mark.parametrize("eps", [0, -0.1, float("nan"), float("inf"), "0.3", None])
def test_bad_eps(setup, eps):
    model, x, y = setup
    with pytest.raises(ValueError, match="eps"):
        attack(model, x, y, eps, name="pgd")


def test_unknown_attack_lists_the_known_ones(setup):
    model, x, y = setup
    with pytest.raises(ValueError, match="unknown attack 'apgd'.*apgd-ce.*square.*boundary"):
        attack(model, x, y, 0.1, name="apgd")
    assert set(available_attacks()) >= {"standard", "apgd-ce", "apgd-t", "fab-t", "square", "pgd",
                                        "fgsm", "boundary"}


def test_label_out_of_range(setup):
    model, x, _ = setup
    with pytest.raises(ValueError, match="label 2 is out of range.*2 classes"):
        attack(model, x, torch.tensor([0, 1, 2, 0]), 0.1, name="fgsm")
    with pytest.raises(ValueError, match="label -1"):
        attack(model, x, torch.tensor([0, -1, 1, 0]), 0.1, name="fgsm")


def test_shape_mismatch(setup):
    model, x, y = setup
    with pytest.raises(ValueError, match=r"shape \(4,\).*\(3,\)"):
        attack(model, x, y[:3], 0.1, name="fgsm")
    with pytest.raises(ValueError, match="integer"):
        attack(model, x, y.float(), 0.1, name="fgsm")


def test_bad_norm_and_options(setup):
    model, x, y = setup
    with pytest.raises(ValueError, match="norm.*'L1'"):
        attack(model, x, y, 0.1, name="fgsm", norm="L1")
    with pytest.raises(ValueError, match="no option 'n_queries'.*steps"):
        attack(model, x, y, 0.1, name="pgd", n_queries=10)
    with pytest.raises(ValueError, match="steps"):
        attack(model, x, y, 0.1, name="pgd", steps=0)


def test_evaluate_rejects_unbounded_and_duplicates(setup):
    model, x, y = setup
    with pytest.raises(ValueError, match="'boundary' is unbounded"):
        evaluate(model, x, y, ["boundary"], eps=0.1, progress=False)
    with pytest.raises(ValueError, match="duplicates"):
        evaluate(model, x, y, ["fgsm", "fgsm"], eps=0.1, progress=False)
    with pytest.raises(ValueError, match="unknown attack 'nope'"):
        evaluate(model, x, y, ["nope"], eps=0.1, progress=False)
    with pytest.raises(ValueError, match="no option 'n_queries'"):
        evaluate(model, x, y, ["fgsm"], eps=0.1, progress=False,
                 options={"fgsm": {"n_queries": 3}})
