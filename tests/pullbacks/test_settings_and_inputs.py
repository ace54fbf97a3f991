"""PullbackSettings (one object, validated once, every rule's temperature from every entry point)
and the checks at the door of the attribution entry points."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from torch import nn

from whiteboxdl.pullbacks import (ExcitationPullback, GradientAscent, PullbackAscent,
                                  PullbackSettings, excitation_pullbacks, pullback_explain_func)
from whiteboxdl.pullbacks.registry import options


class SiluNet(nn.Module):
    """Linear - SiLU - Linear: the pullback is W2 diag(sigmoid(z / T_silu)) W1."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2 = nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.l2(nn.functional.silu(self.l1(x)))


def _silu_pullback(net, x, target, T):
    z = net.l1(x).detach()
    return ((net.l2.weight[target] * torch.sigmoid(z / T)) @ net.l1.weight).detach()


def test_settings_are_frozen_validated_and_complete():
    s = PullbackSettings(temperature=0.5, rules="all")
    assert s.rules == ("relu", "maxpool", "relu6", "silu", "gelu", "layernorm", "attention")
    assert (s.temperature, s.maxpool_temperature, s.silu_temperature) == (0.5, 0.3, 1.6)
    assert s.replace(silu_temperature=2.0).silu_temperature == 2.0 and s.silu_temperature == 1.6
    assert s == PullbackSettings(rules="all", temperature=0.5) and hash(s) == hash(
        PullbackSettings(rules="all", temperature=0.5))
    with pytest.raises(AttributeError, match="frozen"):
        s.temperature = 1.0
    with pytest.raises(ValueError, match="did you mean silu_temperature"):
        PullbackSettings(silu_temprature=1.0)
    with pytest.raises(ValueError, match="rules"):
        PullbackSettings(rules=3)
    assert PullbackSettings(rules=None).rules == ("relu", "maxpool", "relu6")      # None: the defaults
    assert set(PullbackSettings.keywords()) == {"rules", "gate", "recompute", "unhandled",
                                                *options()}
    assert PullbackSettings.split({"temperature": 1.0, "steps": 3}) == ({"temperature": 1.0},
                                                                       {"steps": 3})


@pytest.mark.parametrize("bad", [1e-300, 1e300, 0, -1, float("nan"), "0.3", None, True])
def test_every_temperature_rejects_numbers_that_break_backward(bad):
    for name, option in options().items():
        if option.is_temperature:
            with pytest.raises(ValueError, match=name):
                PullbackSettings(**{name: bad})


def test_every_rules_temperature_reaches_every_entry_point():
    torch.manual_seed(0)
    net, x = SiluNet().eval(), torch.randn(2, 4)
    want = _silu_pullback(net, x, 1, 2.5)
    settings = PullbackSettings(rules=("silu",), silu_temperature=2.5)
    with excitation_pullbacks(settings):
        xr = x.clone().requires_grad_()
        (ctx,) = torch.autograd.grad(net(xr)[:, 1].sum(), xr)
    torch.testing.assert_close(ctx, want)
    torch.testing.assert_close(ExcitationPullback(net, settings).attribute(x, 1), want)
    torch.testing.assert_close(
        ExcitationPullback(net, rules=("silu",), silu_temperature=2.5).attribute(x, 1), want)
    step = PullbackAscent(net, steps=1, alpha=1.0, clip=None, bounds=None,
                          rules=("silu",), silu_temperature=2.5).attribute(x, 1)
    torch.testing.assert_close(step, want / want.norm(dim=1, keepdim=True))
    np.testing.assert_allclose(pullback_explain_func(net, x.numpy(), np.array([1, 1]),
                                                     rules=("silu",), silu_temperature=2.5),
                               want.numpy(), rtol=1e-5, atol=1e-6)
    from whiteboxdl.quality.explainers import get_explainer

    a = get_explainer("SoftPullback", rules=("silu",), silu_temperature=2.5)(
        nn.Sequential(nn.Flatten(), net), x[:, None, None], torch.tensor([1, 1]))
    torch.testing.assert_close(a.reshape(2, 4), want)
    with pytest.raises(ValueError, match="has no option 'samples'"):
        get_explainer("Gradient", samples=3)
    with pytest.raises(ValueError, match="silu_temperature"):
        get_explainer("SoftPullback", silu_temperature=0)


def test_cli_has_a_flag_for_every_setting():
    from whiteboxdl.pullbacks.cli import add_settings_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    flags = {a.dest for a in parser._actions}
    assert set(options()) <= flags
    args = parser.parse_args(["--rules", "relu,silu", "--silu-temperature", "2.5",
                              "--maxpool-rule", "detached", "--gate", "normal"])
    assert settings_from_args(args) == PullbackSettings(rules=("relu", "silu"),
                                                        silu_temperature=2.5,
                                                        maxpool_rule="detached", gate="normal")
    assert settings_from_args(parser.parse_args([])) == PullbackSettings()


# -- targets and inputs at the door --------------------------------------------------------------
@pytest.fixture
def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 10)).eval()


@pytest.mark.parametrize("target, error, words", [
    (-1, ValueError, "negative"), (10, ValueError, r"in \[0, 9\]"), ([1, 2, 3], ValueError, "3 targets"),
    ([[1], [2]], TypeError, "integer class indices"), ("3", TypeError, "target must be an int"),
    (None, ValueError, "target class is required"), (1.0, TypeError, "target must be an int"),
    (torch.tensor([1.0, 2.0]), TypeError, "float"), ([1, -2], ValueError, "negative"),
    (np.array([0.5, 1.5]), TypeError, "integer array"), (True, TypeError, "target must be an int"),
    ([], ValueError, "empty"),
])
def test_bad_targets_are_refused_by_every_entry_point(net, target, error, words):
    x = torch.randn(2, 4)
    for explainer in (ExcitationPullback(net), PullbackAscent(net, steps=1, bounds=None,
                                                              clip=None),
                      GradientAscent(net, steps=1, bounds=None, clip=None)):
        with pytest.raises(error, match=words):
            explainer.attribute(x, target=target)
    with pytest.raises(error, match=words):
        PullbackAscent(net, steps=1, bounds=None, clip=None).ascend(x, target)


def test_good_targets_in_every_spelling_agree(net):
    x = torch.randn(3, 4)
    e = ExcitationPullback(net)
    want = e.attribute(x, target=[2, 2, 2])
    for t in (2, np.int64(2), torch.tensor(2), torch.tensor([2, 2, 2]), np.array([2, 2, 2]),
              (2, 2, 2)):
        assert torch.equal(e.attribute(x, target=t), want)


@pytest.mark.parametrize("inputs, error, words", [
    (np.zeros((2, 4), np.float32), TypeError, "torch.from_numpy"), ([[0.0] * 4], TypeError, "list"),
    (torch.zeros(2, 4, dtype=torch.long), TypeError, "floating-point"),
    (torch.zeros(0, 4), ValueError, "empty batch"), (torch.zeros(4), ValueError, "batch dimension"),
    (torch.full((2, 4), float("nan")), ValueError, "NaN"),
])
def test_bad_inputs_are_refused(net, inputs, error, words):
    with pytest.raises(error, match=words):
        ExcitationPullback(net).attribute(inputs, target=0)
    with pytest.raises(error, match=words):
        PullbackAscent(net, steps=1, bounds=None, clip=None).attribute(inputs, target=0)


def test_explain_func_refuses_float_targets(net):
    with pytest.raises(TypeError, match="integer"):
        pullback_explain_func(net, np.zeros((2, 4), np.float32), np.array([1.7, 2.2]))


def test_ascent_numbers_that_would_leave_the_finite_range_are_refused(net):
    with pytest.raises(ValueError, match="alpha"):
        PullbackAscent(net, alpha=1e300)
    with pytest.raises(ValueError, match="bounds"):
        PullbackAscent(net, bounds=(0,))
    with pytest.raises(ValueError, match="steps"):
        PullbackAscent(net, steps=2.5)


def test_attribution_never_changes_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).train()
    model[3].eval()                                           # a mixed state, kept as it is
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 1, 6, 6)
    with pytest.warns(UserWarning, match="training mode"):
        a = ExcitationPullback(model).attribute(x, target=1)
    PullbackAscent(model, steps=2, alpha=0.1, bounds=None, clip=None).attribute(x, target=0)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # BN stats
    assert model.training and model[1].training and not model[3].training
    model.eval()
    torch.testing.assert_close(ExcitationPullback(model).attribute(x, target=1), a)
