"""The built-in backward rules, registered on import: ReLU, max-pool, SiLU, GELU, LayerNorm and
attention (the paper's and the later revision's).

Each is one :class:`~whiteboxdl.pullbacks.registry.Rule` record: the ops it catches, its handler
(built on the autograd Functions of :mod:`whiteboxdl.pullbacks.gates`), its options and an
example with an analytic reference that the test suite checks in float64.

Example
-------
>>> from whiteboxdl.pullbacks.registry import rule_names
>>> rule_names()[:2]
('relu', 'maxpool')
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from whiteboxdl.pullbacks._compat import original_op, without_own_dispatch
from whiteboxdl.pullbacks.gates import (MAXPOOL_RULES, ConstantStatsLayerNorm,
                                        ConstantWeightsAttention, PoolGeometry, SoftMaxPool,
                                        normal_gate, sigmoid_gate)
from whiteboxdl.pullbacks.registry import (Rule, RuleExample, choice_option, elementwise_rule,
                                           is_inplace_call, register_rule, temperature_option)


def bind(names: tuple[str, ...], args: tuple, kwargs: dict) -> dict:
    """Positional and keyword arguments of a call as one dict (``self`` read as ``input``)."""
    bound = dict(zip(names, args))
    for key, value in kwargs.items():
        bound["input" if key == "self" else key] = value
    return bound


def wants_grad(*tensors) -> bool:
    """Whether grad mode is on and any of ``tensors`` requires grad (else no rule is needed)."""
    return torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad
                                           for t in tensors)


def _randn(*shape: int):
    def make(generator: torch.Generator) -> tuple[Tensor, ...]:
        return (torch.randn(*shape, generator=generator, dtype=torch.float64),)
    return make


def _gate_reference(gate):
    return lambda inputs, grad, T: (grad * gate(inputs[0], T),)


def _half(inputs, grad):
    return (0.5 * grad,)


def _step(inputs, grad):
    return (grad * (inputs[0] > 0),)


# ----------------------------------------------------------------------------- ReLU
_RELU_INPLACE = (torch.relu_, torch.Tensor.relu_)


def _relu(mode, func, args, kwargs):
    inplace = func in _RELU_INPLACE or (func is F.relu and is_inplace_call(args, kwargs, 1))
    return mode.activation(func, args, kwargs, inplace, mode.gate, mode.settings.temperature)


RELU = register_rule(Rule(
    "relu", (F.relu, torch.relu, torch.Tensor.relu, *_RELU_INPLACE), _relu,
    (temperature_option("temperature", 0.3, "ReLU gate temperature T (paper: 0.3)"),),
    recompute=True, default=True,
    description="ReLU: grad * gate(z / T) (sigmoid or normal CDF), the paper's excitation gate",
    example=RuleExample(_randn(4, 7), F.relu, _gate_reference(sigmoid_gate), _half)))


# ----------------------------------------------------------------------------- max-pool
#: Every max-pool spelling -> its number of spatial dimensions.
POOL_DIMS: dict[Callable, int] = {}
for _n in (1, 2, 3):
    for _op in (getattr(F, f"max_pool{_n}d"), getattr(F, f"max_pool{_n}d_with_indices"),
                getattr(torch, f"max_pool{_n}d")):
        POOL_DIMS[_op] = _n
POOL_DIMS[torch.max_pool1d_with_indices] = 1
POOL_DIMS[torch._C._nn.max_pool2d_with_indices] = 2
POOL_DIMS[torch._C._nn.max_pool3d_with_indices] = 3
_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
              "return_indices")


def first_arg(args: tuple, kwargs: dict):
    """The input tensor of a unary call and ``call(func, z)`` that repeats the call with ``z``."""
    if args:
        rest = args[1:]
        return args[0], lambda func, z: func(z, *rest, **kwargs)
    key = "input" if "input" in kwargs else "self"
    others = {k: v for k, v in kwargs.items() if k != key}
    return kwargs[key], lambda func, z: func(z, **others)


def _maxpool(mode, func, args, kwargs):
    bound = bind(_POOL_ARGS, args, kwargs)
    x = bound["input"]
    if not wants_grad(x):
        return func(*args, **kwargs)
    geometry = PoolGeometry(POOL_DIMS[func], bound["kernel_size"], bound.get("stride"),
                            bound.get("padding", 0), bound.get("dilation", 1))
    _, call = first_arg(args, kwargs)
    settings = mode.settings
    return SoftMaxPool.apply(x, lambda t: call(func, t), geometry, settings.maxpool_temperature,
                             settings.maxpool_rule)


def _pool_windows(x: Tensor, kernel: int, stride: int, padding: int):
    """Every window of a 2-d max-pool as a list of (channel plane index, rows, cols) cells."""
    n, c, h, w = x.shape
    out_h = (h + 2 * padding - kernel) // stride + 1
    out_w = (w + 2 * padding - kernel) // stride + 1
    for i in range(out_h):
        for j in range(out_w):
            cells = [(r, q) for r in range(i * stride - padding, i * stride - padding + kernel)
                     for q in range(j * stride - padding, j * stride - padding + kernel)
                     if 0 <= r < h and 0 <= q < w]
            yield i, j, cells


def _pool_reference(inputs, grad, T):
    """Smooth-max routing (the default rule), window by window: the gradient of
    ``sum_w x * softmax(x_w / T)`` over each window's valid cells."""
    (x,) = inputs
    out = torch.zeros_like(x)
    for i, j, cells in _pool_windows(x, 3, 2, 1):
        rows, cols = zip(*cells)
        vals = x[:, :, list(rows), list(cols)]                   # (N, C, cells)
        p = torch.softmax(vals / T, dim=-1)
        routed = p * (1 + (vals - (p * vals).sum(-1, keepdim=True)) / T)
        out[:, :, list(rows), list(cols)] += routed * grad[:, :, i, j, None]
    return (out,)


def _pool_hot_limit(inputs, grad):
    (x,) = inputs
    out = torch.zeros_like(x)
    for i, j, cells in _pool_windows(x, 3, 2, 1):
        rows, cols = zip(*cells)
        out[:, :, list(rows), list(cols)] += grad[:, :, i, j, None] / len(cells)
    return (out,)


MAXPOOL = register_rule(Rule(
    "maxpool", tuple(POOL_DIMS), _maxpool,
    (temperature_option("maxpool_temperature", 0.3, "max-pool routing temperature (paper: 0.3)"),
     choice_option("maxpool_rule", "smoothmax", MAXPOOL_RULES,
                   "smoothmax: derivative of the smooth max (paper); detached: detached softmax "
                   "routing (later revision)")),
    default=True,
    description="max-pool 1d/2d/3d: the gradient is routed over each window by softmax(x / T)",
    example=RuleExample(_randn(2, 3, 7, 7), lambda x: F.max_pool2d(x, 3, 2, 1),
                        _pool_reference, _pool_hot_limit)))


# ----------------------------------------------------------------------------- SiLU, GELU
SILU = register_rule(elementwise_rule(
    "silu", (F.silu,), "silu_temperature", 1.6, sigmoid_gate, inplace_arg=1,
    description="SiLU: grad * sigmoid(z / T) (later revision, T = 1.6)",
    example=RuleExample(_randn(4, 7), F.silu, _gate_reference(sigmoid_gate), _half,
                        cold_limit=_step)))

GELU = register_rule(elementwise_rule(
    "gelu", (F.gelu,), "gelu_temperature", 1.0, normal_gate,
    description="GELU: grad * Phi(z / T) (later revision, T = 1.0)",
    example=RuleExample(_randn(4, 7), F.gelu, _gate_reference(normal_gate), _half,
                        cold_limit=_step)))


# ----------------------------------------------------------------------------- LayerNorm
def _layer_norm(mode, func, args, kwargs):
    b = bind(("input", "normalized_shape", "weight", "bias", "eps"), args, kwargs)
    x, weight, bias = b["input"], b.get("weight"), b.get("bias")
    if not wants_grad(x, weight, bias):
        return func(*args, **kwargs)
    shape, eps = b["normalized_shape"], b.get("eps", 1e-5)
    n_dims = 1 if isinstance(shape, int) else len(shape)
    return ConstantStatsLayerNorm.apply(x, weight, bias,
                                        lambda t, w, bb: func(t, shape, w, bb, eps), n_dims, eps)


def _layer_norm_inputs(generator: torch.Generator) -> tuple[Tensor, ...]:
    x = torch.randn(3, 4, 6, generator=generator, dtype=torch.float64)
    weight = torch.rand(6, generator=generator, dtype=torch.float64) + 0.5
    bias = torch.randn(6, generator=generator, dtype=torch.float64)
    return x, weight, bias


def _layer_norm_reference(inputs, grad, T):
    x, weight, _ = inputs
    mean = x.mean(-1, keepdim=True)
    sigma = ((x - mean) ** 2).mean(-1, keepdim=True).add(1e-5).sqrt()
    return grad * weight / sigma, (grad * (x - mean) / sigma).sum((0, 1)), grad.sum((0, 1))


LAYERNORM = register_rule(Rule(
    "layernorm", (F.layer_norm,), _layer_norm,
    description="LayerNorm: mean and variance constant in backward (later revision)",
    example=RuleExample(_layer_norm_inputs, lambda x, w, b: F.layer_norm(x, (6,), w, b),
                        _layer_norm_reference, cold_is_vanilla=False)))


# ----------------------------------------------------------------------------- attention
def _sdpa(mode, func, args, kwargs):
    b = bind(("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale"),
             args, kwargs)
    q, k, v = b["query"], b["key"], b["value"]
    if not wants_grad(q, k, v):
        return func(*args, **kwargs)
    if b.get("dropout_p", 0.0) > 0:
        raise ValueError(f"the attention rule needs dropout_p=0 (call model.eval()), got "
                         f"dropout_p={b['dropout_p']}")
    rest = {key: val for key, val in b.items() if key not in ("query", "key", "value")}
    return ConstantWeightsAttention.apply(
        q, k, v, lambda q_, k_, v_: func(q_, k_, v_, **rest), b.get("attn_mask"),
        bool(b.get("is_causal", False)), b.get("scale"), bool(b.get("enable_gqa", False)),
        mode.settings.attention_temperature)


def _mha(mode, func, args, kwargs):
    with _MultiheadAttentionWeights(mode):
        return without_own_dispatch(func)(*args, **kwargs)


class _WeightsConstantBmm(torch.autograd.Function):
    """``bmm(A, v)`` (original forward) whose backward treats ``A`` as the constant ``A_T``."""

    @staticmethod
    def forward(ctx, weights, v, soft_weights):  # type: ignore[override]
        out = original_op(lambda: torch.bmm(weights, v))
        ctx.save_for_backward(soft_weights)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (soft,) = ctx.saved_tensors
        return None, soft.transpose(-2, -1) @ grad, None


class _MultiheadAttentionWeights(TorchFunctionMode):
    """Active only inside ``F.multi_head_attention_forward``: the explicit-weights path computes
    ``softmax(scores)`` then ``bmm(weights, v)``; the weights become constants (softened by T)."""

    def __init__(self, outer):
        super().__init__()
        self.outer = outer
        self.soft: dict[int, tuple[Tensor, Tensor]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return _sdpa(self.outer, func, args, kwargs)
        if func is F.dropout and (args[1] if len(args) > 1 else kwargs.get("p", 0.5)) > 0 \
                and (args[2] if len(args) > 2 else kwargs.get("training", True)):
            raise ValueError("the attention rule needs attention dropout off (call model.eval())")
        out = func(*args, **kwargs)
        if func is F.softmax:
            scores = args[0] if args else kwargs["input"]
            temperature = self.outer.settings.attention_temperature
            soft = out if temperature == 1.0 else torch.softmax(scores / temperature, dim=-1)
            self.soft[id(out)] = (out, soft.detach())
        elif func is torch.bmm and args and id(args[0]) in self.soft \
                and self.soft[id(args[0])][0] is args[0]:
            return _WeightsConstantBmm.apply(args[0], args[1], self.soft[id(args[0])][1])
        return out


def _attention_inputs(generator: torch.Generator) -> tuple[Tensor, ...]:
    return tuple(torch.randn(2, 2, 5, 4, generator=generator, dtype=torch.float64)
                 for _ in range(3))


def _attention_reference(inputs, grad, T: Optional[float]):
    q, k, _ = inputs
    if T is None:                                            # uniform weights (T -> infinity)
        weights = torch.full((*q.shape[:-1], k.shape[-2]), 1.0 / k.shape[-2], dtype=q.dtype)
    else:
        weights = torch.softmax(q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) * T), dim=-1)
    return torch.zeros_like(q), torch.zeros_like(k), weights.transpose(-2, -1) @ grad


ATTENTION = register_rule(Rule(
    "attention", (F.scaled_dot_product_attention, F.multi_head_attention_forward),
    lambda mode, func, args, kwargs: (_mha if func is F.multi_head_attention_forward
                                      else _sdpa)(mode, func, args, kwargs),
    (temperature_option("attention_temperature", 1.0, "softening of the attention weights"),),
    description="attention: weights softened by T and constant in backward (later revision); "
                "the gradient flows through the values",
    example=RuleExample(_attention_inputs, F.scaled_dot_product_attention, _attention_reference,
                        lambda inputs, grad: _attention_reference(inputs, grad, None),
                        cold_is_vanilla=False)))

__all__ = ["RELU", "MAXPOOL", "SILU", "GELU", "LAYERNORM", "ATTENTION", "POOL_DIMS", "bind",
           "first_arg", "wants_grad"]
