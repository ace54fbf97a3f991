"""Every registered rule, through its registry record: forward bit-identical, analytic reference in
float64, the cold and hot temperature limits, thread isolation, exception safety. A rule
registered from outside the package runs the same suite."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

from whiteboxdl.pullbacks import (ExcitationPullback, PullbackAscent, PullbackSettings,
                                  UnhandledOpWarning, excitation_pullbacks)
from whiteboxdl.pullbacks.registry import (RuleExample, elementwise_rule, get_rule,
                                           register_rule, rules, unregister_rule)


# -- a rule from outside the package: a soft backward for tanh (the whole definition) ----------
def _toy_gate(z, T):
    return 1 - torch.tanh(z / T) ** 2


TOY = elementwise_rule(
    "toy_tanh", ops=(torch.tanh, torch.Tensor.tanh), temperature="toy_temperature",
    default_temperature=0.7, gate=_toy_gate,
    example=RuleExample(
        inputs=lambda g: (torch.randn(3, 5, generator=g, dtype=torch.float64),),
        call=torch.tanh,
        reference=lambda inputs, grad, T: (grad * (1 - torch.tanh(inputs[0] / T) ** 2),),
        hot_limit=lambda inputs, grad: (grad,), cold_is_vanilla=False))


@pytest.fixture
def toy_rule():
    register_rule(TOY)
    yield TOY
    unregister_rule("toy_tanh")


BUILTIN = [r.name for r in rules()]


@pytest.fixture(params=BUILTIN + ["toy_tanh"])
def rule(request):
    if request.param == "toy_tanh":
        register_rule(TOY)
        yield TOY
        unregister_rule("toy_tanh")
    else:
        yield get_rule(request.param)


def _inputs(rule, seed=0):
    return tuple(t.requires_grad_() for t in rule.example.inputs(torch.Generator().manual_seed(seed)))


def _grads(rule, inputs, grad_out, **settings):
    kwargs = {"rules": (rule.name,), **settings}
    with excitation_pullbacks(**kwargs):
        out = rule.example.call(*inputs)
    return out, torch.autograd.grad(out, inputs, grad_out, allow_unused=True)


def _temperature_settings(rule, value):
    option = rule.temperature
    return {option.name: value} if option is not None else {}


def test_forward_is_bit_identical(rule):
    inputs = _inputs(rule)
    plain = rule.example.call(*inputs)
    soft, _ = _grads(rule, inputs, torch.ones_like(plain))
    assert torch.equal(soft, plain)


def test_backward_equals_the_analytic_reference(rule):
    inputs = _inputs(rule)
    plain = rule.example.call(*inputs)
    grad_out = torch.randn(plain.shape, generator=torch.Generator().manual_seed(1),
                           dtype=plain.dtype)
    for T in (0.4, 1.3):
        _, got = _grads(rule, inputs, grad_out, **_temperature_settings(rule, T))
        want = rule.example.reference(tuple(t.detach() for t in inputs), grad_out, T)
        for g, w in zip(got, want):
            if w is not None:
                torch.testing.assert_close(g if g is not None else torch.zeros_like(w), w,
                                           rtol=1e-10, atol=1e-12)


def test_cold_limit(rule):
    """T -> 0: the vanilla gradient (ReLU, max-pool) or the declared limit (SiLU/GELU: a step)."""
    example = rule.example
    if rule.temperature is None or not (example.cold_is_vanilla or example.cold_limit):
        pytest.skip(f"{rule.name}: no cold limit declared")
    inputs = _inputs(rule)
    plain = example.call(*inputs)
    grad_out = torch.randn_like(plain)
    want = example.cold_limit(tuple(t.detach() for t in inputs), grad_out) \
        if example.cold_limit else torch.autograd.grad(plain, inputs, grad_out)
    _, cold = _grads(rule, inputs, grad_out, **_temperature_settings(rule, 1e-9))
    for c, v in zip(cold, want):
        torch.testing.assert_close(c, v, rtol=1e-12, atol=1e-14)


def test_hot_limit(rule):
    if rule.temperature is None or rule.example.hot_limit is None:
        pytest.skip(f"{rule.name}: no large-temperature limit declared")
    inputs = _inputs(rule)
    grad_out = torch.randn_like(rule.example.call(*inputs))
    _, hot = _grads(rule, inputs, grad_out, **_temperature_settings(rule, 1e12))
    want = rule.example.hot_limit(tuple(t.detach() for t in inputs), grad_out)
    for g, w in zip(hot, want):
        if w is not None:
            torch.testing.assert_close(g if g is not None else torch.zeros_like(w), w,
                                       rtol=1e-9, atol=1e-12)


def test_threads_with_different_temperatures_are_isolated(rule):
    if rule.temperature is None:
        pytest.skip(f"{rule.name} has no temperature")
    inputs = _inputs(rule)
    grad_out = torch.ones_like(rule.example.call(*inputs))
    temps = [0.2, 0.5, 1.0, 2.0]
    sequential = [_grads(rule, inputs, grad_out, **_temperature_settings(rule, t))[1]
                  for t in temps]
    results = [None] * len(temps)
    barrier = threading.Barrier(len(temps))

    def work(i):
        barrier.wait()
        for _ in range(3):
            results[i] = _grads(rule, inputs, grad_out, **_temperature_settings(rule, temps[i]))[1]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(temps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, sequential):
        for g, w in zip(got, want):
            assert (g is None and w is None) or torch.equal(g, w)


def test_exception_inside_the_context_restores_vanilla(rule):
    inputs = _inputs(rule)
    plain = rule.example.call(*inputs)
    grad_out = torch.randn_like(plain)
    vanilla = torch.autograd.grad(plain, inputs, grad_out, allow_unused=True)
    with pytest.raises(RuntimeError, match="boom"):
        with excitation_pullbacks(rules=(rule.name,)):
            raise RuntimeError("boom")
    again = torch.autograd.grad(rule.example.call(*inputs), inputs, grad_out, allow_unused=True)
    for a, v in zip(again, vanilla):
        assert (a is None and v is None) or torch.equal(a, v)


def test_a_rule_registered_outside_is_reachable_from_every_entry_point(toy_rule):
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)).eval()
    x = torch.randn(2, 4)
    assert "toy_temperature" in PullbackSettings.keywords()
    assert PullbackSettings().toy_temperature == 0.7
    attr = ExcitationPullback(net, rules=("toy_tanh",), toy_temperature=2.0).attribute(x, target=1)
    z = net[0](x).detach()
    expected = (net[2].weight[1] * _toy_gate(z, 2.0)) @ net[0].weight
    torch.testing.assert_close(attr, expected)
    step = PullbackAscent(net, steps=1, alpha=1.0, bounds=None, clip=None,
                          settings=PullbackSettings(rules="all", toy_temperature=2.0))
    torch.testing.assert_close(step.attribute(x, target=1),
                               expected / expected.norm(dim=1, keepdim=True))


def test_registry_refuses_clashes(toy_rule):
    with pytest.raises(ValueError, match="already registered"):
        register_rule(TOY)
    clash = elementwise_rule("other", ops=(torch.tanh,), temperature="other_temperature",
                             default_temperature=1.0, gate=_toy_gate)
    with pytest.raises(ValueError, match="already intercepts torch.tanh"):
        register_rule(clash)
    same_option = elementwise_rule("other", ops=(torch.sigmoid,), temperature="toy_temperature",
                                   default_temperature=1.0, gate=_toy_gate)
    with pytest.raises(ValueError, match="toy_temperature.*already belongs"):
        register_rule(same_option)
    with pytest.raises(ValueError, match="unknown rule 'nope'"):
        excitation_pullbacks(rules=("nope",))


# -- no silent pass-through --------------------------------------------------------------------
def test_unhandled_op_warns_once_per_context_naming_the_op():
    z = torch.randn(8, requires_grad=True)
    with pytest.warns(UnhandledOpWarning, match=r"F\.elu .*vanilla.*no pullback rule exists"):
        with excitation_pullbacks():
            F.elu(z)
    with pytest.warns(UnhandledOpWarning) as record:
        with excitation_pullbacks():
            F.elu(z)
            F.elu(z * 2)
    assert len([w for w in record if "elu" in str(w.message)]) == 1
    with pytest.warns(UnhandledOpWarning, match=r"F\.silu.*'silu' rule handles it"):
        with excitation_pullbacks():
            F.silu(z)


def test_unhandled_can_be_silenced_or_made_an_error(recwarn):
    z = torch.randn(8, requires_grad=True)
    with excitation_pullbacks(unhandled="ignore"):
        F.leaky_relu(z)
    with torch.no_grad(), excitation_pullbacks():        # no gradient: nothing to report
        F.leaky_relu(z)
    assert not [w for w in recwarn if issubclass(w.category, UnhandledOpWarning)]
    with pytest.raises(RuntimeError, match="leaky_relu"):
        with excitation_pullbacks(unhandled="error"):
            F.leaky_relu(z)
