"""The attention rule on attention written out by hand, ``softmax(scores, -1) @ v`` (timm's
non-fused path): the weights are constants softened by T, the gradient flows through the values
only; softmax and matmul calls that are not that pattern keep their vanilla backward."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from whiteboxdl.pullbacks import UnhandledOpWarning, excitation_pullbacks


def _qkv(seed=0, heads=2):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, heads, 5, 4, generator=g, dtype=torch.float64).requires_grad_()
                 for _ in range(3))


def _expected(q, k, grad, T, v_shape=None):
    weights = torch.softmax((q @ k.transpose(-2, -1)).detach() * 0.5 / T, dim=-1)
    grad_v = weights.transpose(-2, -1) @ grad
    return grad_v if v_shape is None else grad_v.sum_to_size(v_shape)


SPELLINGS = {
    "Tensor.softmax, @": lambda s, v: s.softmax(dim=-1) @ v,
    "F.softmax, torch.matmul": lambda s, v: torch.matmul(F.softmax(s, dim=-1), v),
    "torch.softmax, Tensor.matmul": lambda s, v: torch.softmax(s, -1).matmul(v),
    "dim=3, eval dropout": lambda s, v: F.dropout(s.softmax(3), 0.1, training=False) @ v,
    "bmm": lambda s, v: torch.bmm(s.flatten(0, 1).softmax(-1), v.flatten(0, 1)).view(2, 2, 5, 4),
}


@pytest.mark.parametrize("name", SPELLINGS)
@pytest.mark.parametrize("T", [1.0, 2.5])
def test_weights_are_constant_and_softened(name, T):
    q, k, v = _qkv()
    call = SPELLINGS[name]
    grad = torch.randn(2, 2, 5, 4, dtype=torch.float64)
    plain = call((q @ k.transpose(-2, -1)) * 0.5, v)
    with excitation_pullbacks(rules=("attention",), attention_temperature=T):
        out = call((q @ k.transpose(-2, -1)) * 0.5, v)
    assert torch.equal(out, plain)
    gq, gk, gv = torch.autograd.grad(out, (q, k, v), grad, allow_unused=True)
    assert gq is None and gk is None
    torch.testing.assert_close(gv, _expected(q, k, grad, T), rtol=1e-12, atol=1e-14)


def test_broadcast_values_get_summed_gradients():
    q, k, _ = _qkv()
    v = torch.randn(2, 1, 5, 4, dtype=torch.float64, requires_grad=True)     # shared by heads
    grad = torch.randn(2, 2, 5, 4, dtype=torch.float64)
    with excitation_pullbacks(rules=("attention",)):
        out = ((q @ k.transpose(-2, -1)) * 0.5).softmax(-1) @ v
    (gv,) = torch.autograd.grad(out, v, grad)
    torch.testing.assert_close(gv, _expected(q, k, grad, 1.0, v.shape), rtol=1e-12, atol=1e-14)
    vec = torch.randn(5, dtype=torch.float64, requires_grad=True)
    with excitation_pullbacks(rules=("attention",)):
        out = ((q @ k.transpose(-2, -1)) * 0.5).softmax(-1) @ vec              # (2, 2, 5)
    g = torch.randn(2, 2, 5, dtype=torch.float64)
    (gvec,) = torch.autograd.grad(out, vec, g)
    weights = torch.softmax((q @ k.transpose(-2, -1)).detach() * 0.5, -1)
    torch.testing.assert_close(gvec, (weights * g[..., None]).sum((0, 1, 2)), rtol=1e-12,
                               atol=1e-14)


def _vanilla_and_rule(call, *inputs):
    plain = call(*inputs)
    grad = torch.randn_like(plain)
    want = torch.autograd.grad(plain, inputs, grad)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnhandledOpWarning)
        with excitation_pullbacks(rules="all"):
            got = torch.autograd.grad(call(*inputs), inputs, grad)
    return want, got


UNRELATED = {
    "softmax over another dim": lambda s, v: s.softmax(dim=-2) @ v,
    "softmax output on the right": lambda s, v: v.transpose(-2, -1) @ s.softmax(-1),
    "transposed weights": lambda s, v: s.softmax(-1).transpose(-2, -1) @ v,
    "a copy of the weights": lambda s, v: s.softmax(-1).clone() @ v,
    "softmax used otherwise": lambda s, v: s.softmax(-1) * v,
    "plain matmul": lambda s, v: s @ v,
}


@pytest.mark.parametrize("name", UNRELATED)
def test_other_softmax_and_matmul_calls_are_untouched(name):
    g = torch.Generator().manual_seed(3)
    s = torch.randn(2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    want, got = _vanilla_and_rule(UNRELATED[name], s, v)
    for w, gg in zip(want, got):
        torch.testing.assert_close(gg, w, rtol=1e-13, atol=1e-15)


def test_weights_from_outside_the_context_or_another_context_are_untouched():
    s = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    weights = s.softmax(-1)                                         # made outside
    with excitation_pullbacks(rules="all"):
        out = weights @ v
    assert torch.autograd.grad(out.sum(), s)[0].abs().sum() > 0      # vanilla: reaches s
    with excitation_pullbacks(rules="all"):
        inner = s.softmax(-1)
    with excitation_pullbacks(rules="all"):
        out = inner @ v                                             # another context's tag
    assert torch.autograd.grad(out.sum(), s)[0].abs().sum() > 0


def test_default_rules_leave_softmax_and_matmul_alone_without_warnings():
    s = torch.randn(3, 4, requires_grad=True)
    v = torch.randn(4, 2, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnhandledOpWarning)
        with excitation_pullbacks():
            out = s.softmax(-1) @ v
    assert torch.autograd.grad(out.sum(), s)[0].abs().sum() > 0


def test_attention_dropout_in_training_mode_is_refused():
    s = torch.randn(3, 4, requires_grad=True)
    with pytest.raises(ValueError, match="attention dropout off"):
        with excitation_pullbacks(rules=("attention",)):
            F.dropout(s.softmax(-1), 0.1, training=True)
