"""The built-in backward rules, registered on import: ReLU, ReLU6/hardtanh, max-pool, SiLU, GELU,
LayerNorm and attention (the paper's, the later revision's, and the clipped-ReLU extension).

Each is one :class:`~whiteboxdl.pullbacks.registry.Rule` record: the ops it catches, its handler
(built on the autograd Functions of :mod:`whiteboxdl.pullbacks.gates`), its options and an
example with an analytic reference that the test suite checks in float64.

Example
-------
>>> from whiteboxdl.pullbacks.registry import rule_names
>>> rule_names()[:3]
('relu', 'maxpool', 'relu6')
"""

from __future__ import annotations

import math
import weakref
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from whiteboxdl.pullbacks._compat import original_op, without_own_dispatch
from whiteboxdl.pullbacks.gates import (MAXPOOL_RULES, ClippedGate, ConstantStatsLayerNorm,
                                        ConstantWeightsAttention, PoolGeometry, SoftMaxPool,
                                        normal_gate, sigmoid_gate)
from whiteboxdl.pullbacks.recipes import BatchNormTerm, recipe_of
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


# ----------------------------------------------------------------------------- ReLU6 / hardtanh
#: Every clipped-ReLU spelling -> (argument names, fixed (lo, hi) or None, always in place).
#: ``nn.ReLU6`` and ``nn.Hardtanh`` call ``F.hardtanh``; ``F.hardtanh_`` is ``torch._C._nn.hardtanh_``.
_CLIPPED: dict[Callable, tuple[tuple[str, ...], Optional[tuple[float, float]], bool]] = {
    F.relu6: (("input", "inplace"), (0.0, 6.0), False),
    F.hardtanh: (("input", "min_val", "max_val", "inplace"), None, False),
    torch._C._nn.relu6: (("input",), (0.0, 6.0), False),
    torch._C._nn.relu6_: (("input",), (0.0, 6.0), True),
    torch._C._nn.hardtanh: (("input", "min_val", "max_val"), None, False),
    torch._C._nn.hardtanh_: (("input", "min_val", "max_val"), None, True),
}


#: ``relu6_scale``: one temperature for every channel, or T times each channel's spread.
RELU6_SCALES = ("fixed", "channel")


def channel_temperature(z: Tensor, temperature: float) -> float | Tensor:
    """``temperature`` times the spread of each channel (dim 1) of ``z`` when ``z`` is an
    eval-mode BatchNorm output (its recipe): ``|weight| * sqrt(var / (var + eps))``, the standard
    deviation of ``z`` over the data BatchNorm was trained on. Else ``temperature`` unchanged."""
    recipe = recipe_of(z)
    if recipe is None or len(recipe.terms) != 1 or not isinstance(recipe.terms[0], BatchNormTerm):
        return temperature
    term, tensors = recipe.terms[0], recipe.tensors
    var = tensors[2].detach()
    spread = torch.sqrt(var / (var + term.eps))
    if term.has_weight:
        spread = spread * tensors[3].detach().abs()
    shape = (1, -1) + (1,) * (z.ndim - 2)
    return (temperature * spread.clamp_min(1e-6)).to(z.dtype).view(shape)


def _clipped_relu(mode, func, args, kwargs):
    names, fixed, always_inplace = _CLIPPED[func]
    bound = bind(names, args, kwargs)
    lo, hi = fixed or (float(bound.get("min_val", -1.0)), float(bound.get("max_val", 1.0)))
    inplace = always_inplace or bool(bound.get("inplace", False))
    temperature = mode.settings.relu6_temperature
    if mode.settings.relu6_scale == "channel" and isinstance(bound.get("input"), Tensor) \
            and bound["input"].ndim >= 2:
        temperature = channel_temperature(bound["input"], temperature)
    return mode.activation(func, args, kwargs, inplace, ClippedGate(mode.gate, lo, hi),
                           temperature)


_CLIPPED_LO, _CLIPPED_HI = -0.3, 0.2          # the example: hardtanh(z, -0.3, 0.2)


def _clipped_reference(inputs, grad, T):
    z = inputs[0]
    return (grad * (torch.sigmoid((z - _CLIPPED_LO) / T) - torch.sigmoid((z - _CLIPPED_HI) / T)),)


RELU6 = register_rule(Rule(
    "relu6", tuple(_CLIPPED), _clipped_relu,
    (temperature_option("relu6_temperature", 2.0,
                        "ReLU6 / hardtanh gate temperature T (measured on EfficientNet-Lite0)"),
     choice_option("relu6_scale", "fixed", RELU6_SCALES,
                   "fixed: one T for every channel; channel: T times each channel's "
                   "pre-activation spread (from its BatchNorm: |weight| sqrt(var/(var+eps)))")),
    recompute=True, default=True,
    description="ReLU6 and hardtanh(lo, hi): grad * (g((z - lo)/T) - g((z - hi)/T)), the soft "
                "gate of relu(z - lo) - relu(z - hi) (g = sigmoid or normal CDF)",
    example=RuleExample(_randn(6, 7), lambda z: F.hardtanh(z, _CLIPPED_LO, _CLIPPED_HI),
                        _clipped_reference, lambda inputs, grad: (torch.zeros_like(grad),))))


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


# Attention written out by hand (timm's non-fused path, MHA's explicit-weights path):
# ``w = softmax(scores, dim=-1)`` ... ``w @ v``. While the rule is active, a softmax over the
# last dimension tags its output; a matmul whose LEFT operand is such an output (the same tensor,
# not changed in place since, from this context) contracts over the normalised dimension, i.e.
# it is ``weights @ values``: its backward treats the weights as constants (softened by T), so the
# gradient flows through the values only. Every other softmax and matmul runs untouched.
_SOFTMAX_OPS = (F.softmax, torch.softmax, torch.Tensor.softmax)
_MATMUL_OPS = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm,
               torch.Tensor.bmm)
_WEIGHTS_TAG = "_whiteboxdl_attention_weights"


def _softmax(mode, func, args, kwargs):
    out = func(*args, **kwargs)
    if not isinstance(out, Tensor) or out.ndim < 2 or not wants_grad(out):
        return out
    b = bind(("input", "dim"), args, kwargs)
    dim = b.get("dim")
    if not isinstance(dim, int) or dim % out.ndim != out.ndim - 1:
        return out
    temperature = mode.settings.attention_temperature
    soft = None if temperature == 1.0 else \
        torch.softmax(b["input"].detach() / temperature, dim=-1, dtype=out.dtype)
    setattr(out, _WEIGHTS_TAG, (weakref.ref(mode), out._version, soft))
    return out


def attention_weights_of(mode, tensor: object) -> Optional[Tensor]:
    """The constant (softened) weights if ``tensor`` is a softmax output tagged by ``mode``
    and unchanged since, else ``None``."""
    if not isinstance(tensor, Tensor):
        return None
    tag = getattr(tensor, _WEIGHTS_TAG, None)
    if tag is None or tag[0]() is not mode or tag[1] != tensor._version:
        return None
    return tag[2] if tag[2] is not None else tensor.detach()


def _matmul(mode, func, args, kwargs):
    if len(args) != 2 or kwargs or not all(isinstance(a, Tensor) for a in args) \
            or not wants_grad(*args):
        return func(*args, **kwargs)
    weights, values = args
    soft = attention_weights_of(mode, weights)
    if soft is None:
        return func(*args)
    return WeightsConstantMatmul.apply(weights, values, soft, func)


def _dropout(mode, func, args, kwargs):
    b = bind(("input", "p", "training", "inplace"), args, kwargs)
    if attention_weights_of(mode, b["input"]) is not None and b.get("p", 0.5) > 0 \
            and b.get("training", True):
        raise ValueError("the attention rule needs attention dropout off (call model.eval())")
    return func(*args, **kwargs)


class WeightsConstantMatmul(torch.autograd.Function):
    """``op(weights, v)`` (the original matmul/bmm) whose backward treats ``weights`` as the
    constant ``soft``: ``v`` gets ``soft^T @ grad`` (summed over broadcast dimensions), the
    weights nothing."""

    @staticmethod
    def forward(ctx, weights, v, soft, op):  # type: ignore[override]
        out = original_op(lambda: op(weights, v))
        ctx.save_for_backward(soft)
        ctx.v_shape = v.shape
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (soft,) = ctx.saved_tensors
        shape = ctx.v_shape
        if len(shape) == 1:                                  # weights @ vector
            grad_v = (soft * grad.unsqueeze(-1)).reshape(-1, shape[0]).sum(0)
        else:
            grad_v = soft.transpose(-2, -1).to(grad.dtype) @ grad
            grad_v = grad_v.sum_to_size(shape) if grad_v.shape != shape else grad_v
        return None, grad_v, None, None


class _MultiheadAttentionWeights(TorchFunctionMode):
    """Active only inside ``F.multi_head_attention_forward``: its explicit-weights path computes
    ``softmax(scores)`` then ``bmm(weights, v)``, handled by the rules above."""

    def __init__(self, outer):
        super().__init__()
        self.outer = outer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return _sdpa(self.outer, func, args, kwargs)
        for ops, handler in ((_SOFTMAX_OPS, _softmax), (_MATMUL_OPS, _matmul),
                             ((F.dropout,), _dropout)):
            if any(func is op for op in ops):
                return handler(self.outer, func, args, kwargs)
        return func(*args, **kwargs)


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


_ATTENTION_HANDLERS: dict[Callable, Callable] = {
    F.scaled_dot_product_attention: _sdpa, F.multi_head_attention_forward: _mha,
    F.dropout: _dropout, **{op: _softmax for op in _SOFTMAX_OPS},
    **{op: _matmul for op in _MATMUL_OPS}}

ATTENTION = register_rule(Rule(
    "attention", (F.scaled_dot_product_attention, F.multi_head_attention_forward),
    lambda mode, func, args, kwargs: _ATTENTION_HANDLERS[func](mode, func, args, kwargs),
    (temperature_option("attention_temperature", 1.0, "softening of the attention weights"),),
    description="attention (fused scaled_dot_product_attention, nn.MultiheadAttention, and "
                "softmax(scores, -1) @ v written out): weights softened by T and constant in "
                "backward (later revision); the gradient flows through the values",
    example=RuleExample(_attention_inputs, F.scaled_dot_product_attention, _attention_reference,
                        lambda inputs, grad: _attention_reference(inputs, grad, None),
                        cold_is_vanilla=False),
    companion_ops=(*_SOFTMAX_OPS, *_MATMUL_OPS, F.dropout)))

__all__ = ["RELU", "RELU6", "MAXPOOL", "SILU", "GELU", "LAYERNORM", "ATTENTION", "POOL_DIMS", "bind",
           "first_arg", "wants_grad"]
