"""Autograd Functions whose forward is the original op and whose backward is a soft rule.

Every Function here calls the original PyTorch op in ``forward`` (so outputs are bit-identical)
and replaces only the backward pass:

* :class:`SoftGate` — element-wise activations (ReLU, SiLU, GELU): ``grad_in = grad_out * gate(z)``
  with ``gate`` = ``sigmoid(z / T)`` or the normal CDF ``Phi(z / T)``; saves the pre-activation only.
* :class:`ConstantStatsLayerNorm` — LayerNorm with mean and variance constant in backward.
* :class:`ConstantWeightsAttention` — ``scaled_dot_product_attention`` with the attention weights
  (softened by ``T``) constant in backward: the gradient flows through the values only.

Max-pool's soft routing lives in :mod:`whiteboxdl.pullbacks.maxpool`.

Example
-------
>>> import torch
>>> from whiteboxdl.pullbacks.gates import soft_relu
>>> z = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
>>> soft_relu(z, temperature=0.3).sum().backward()
>>> [round(v, 4) for v in z.grad.tolist()]
[0.0344, 0.5, 0.9987]
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Callable, Optional

import torch
from torch import Tensor

GateFn = Callable[[Tensor, float], Tensor]


def sigmoid_gate(z: Tensor, temperature: float) -> Tensor:
    """The paper's soft gate ``sigmoid(z / T)`` (one new tensor, the rest in place)."""
    return torch.div(z, temperature).sigmoid_()


def normal_gate(z: Tensor, temperature: float) -> Tensor:
    """The later revision's "expected gating" ``Phi(z / T)`` (standard normal CDF)."""
    return torch.special.ndtr(z / temperature)


def gated_grad(gate: GateFn, z: Tensor, temperature: float, grad: Tensor,
               reuse_z: bool = False) -> Tensor:
    """``grad * gate(z, T)``; for the sigmoid gate one fused pass (the softplus derivative with
    ``beta = 1/T`` is ``sigmoid(z / T)``; past ``z/T = 40`` it is 1 to within 4e-18).
    ``reuse_z=True`` writes the result into ``z`` (a temporary) instead of a new tensor."""
    if gate is sigmoid_gate:
        if reuse_z and z.shape == grad.shape and z.dtype == grad.dtype:
            return torch.ops.aten.softplus_backward.grad_input(grad, z, 1.0 / temperature, 40.0,
                                                               grad_input=z)
        return torch.ops.aten.softplus_backward(grad, z, 1.0 / temperature, 40.0)
    return gate(z, temperature).mul_(grad)


#: Gate functions by name.
GATES: dict[str, GateFn] = {"sigmoid": sigmoid_gate, "normal": normal_gate}

def check_temperature(value: object, name: str = "temperature") -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) \
            or float(value) <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def get_gate(gate: str | GateFn) -> GateFn:
    """Look up a gate by name (``"sigmoid"`` or ``"normal"``); callables pass through."""
    if callable(gate):
        return gate
    if gate not in GATES:
        raise ValueError(f"unknown gate {gate!r}; choose one of {sorted(GATES)}")
    return GATES[gate]


def _original(call: Callable[[], object]):
    """Run the original op with every TorchFunctionMode disabled (no re-interception)."""
    with torch._C.DisableTorchFunction():
        return call()


class SoftGate(torch.autograd.Function):
    """Element-wise activation with a soft-gated backward.

    ``apply(z, op, gate, temperature, inplace, recompute)``: ``op(z)`` is the original activation
    (if in-place, ``inplace=True``). The pre-activation is saved for backward, or, when a
    :class:`~whiteboxdl.pullbacks.recipes.Recipe` ``recompute`` is given, recomputed from its
    tensors (which autograd keeps anyway) in backward.
    """

    @staticmethod
    def forward(ctx, z: Tensor, op: Callable[[Tensor], Tensor], gate: GateFn,  # type: ignore[override]
                temperature: float, inplace: bool, recompute=None) -> Tensor:
        saved = z.clone() if inplace and recompute is None else z
        out = _original(lambda: op(z))
        if inplace:
            ctx.mark_dirty(z)
        if recompute is None:
            ctx.save_for_backward(saved)
            ctx.compute = None
        else:
            ctx.save_for_backward(*recompute.tensors)
            ctx.compute = recompute.compute
        ctx.gate, ctx.temperature = gate, temperature
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        if ctx.compute is not None:
            tensors = ctx.saved_tensors
            with torch.no_grad():
                z = _original(lambda: ctx.compute(*tensors))
            fresh = all(z.data_ptr() != t.data_ptr() for t in tensors)
        else:
            (z,), fresh = ctx.saved_tensors, False
        return (gated_grad(ctx.gate, z, ctx.temperature, grad, reuse_z=fresh),
                None, None, None, None, None)


def soft_relu(z: Tensor, temperature: float = 0.3, gate: str | GateFn = "sigmoid",
              inplace: bool = False) -> Tensor:
    """``relu(z)`` with the soft-gated backward ``grad * gate(z / T)``."""
    temperature = check_temperature(temperature)
    op = torch.relu_ if inplace else torch.relu
    return SoftGate.apply(z, op, get_gate(gate), temperature, inplace, None)


class ConstantStatsLayerNorm(torch.autograd.Function):
    """LayerNorm with mean and variance treated as constants in backward.

    ``apply(x, weight, bias, op, n_dims, eps)``: backward gives ``grad * weight / sigma`` for ``x``
    and the usual gradients for ``weight`` and ``bias``.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, op, n_dims: int, eps: float):  # type: ignore[override]
        out = _original(lambda: op(x, weight, bias))
        ctx.save_for_backward(x, weight)
        ctx.n_dims, ctx.eps, ctx.has_bias = n_dims, eps, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        dims = tuple(range(x.ndim - ctx.n_dims, x.ndim))
        var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
        rstd = torch.rsqrt(var + ctx.eps)
        grad_x = grad * rstd if weight is None else grad * weight * rstd
        lead = tuple(range(x.ndim - ctx.n_dims))
        grad_w = (grad * (x - mean) * rstd).sum(lead) if weight is not None \
            and ctx.needs_input_grad[1] else None
        grad_b = grad.sum(lead) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None, None


# ---------------------------------------------------------------------------------- attention
def attention_weights(q: Tensor, k: Tensor, attn_mask: Optional[Tensor], is_causal: bool,
                      scale: Optional[float], enable_gqa: bool, temperature: float) -> Tensor:
    """``softmax(q k^T * scale / T + mask)`` with the conventions of ``scaled_dot_product_attention``."""
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * (scale / temperature)
    L, S = q.shape[-2], k.shape[-2]
    if is_causal:
        causal = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, -math.inf)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, -math.inf)
        else:
            scores = scores + attn_mask / temperature
    return torch.softmax(scores, dim=-1)


class ConstantWeightsAttention(torch.autograd.Function):
    """``scaled_dot_product_attention`` whose attention weights are constant in backward.

    ``apply(q, k, v, op, attn_mask, is_causal, scale, enable_gqa, temperature)``: the gradient
    reaches ``v`` as ``A_T^T grad`` with ``A_T`` the weights softened by ``T``; ``q`` and ``k`` get 0.
    """

    @staticmethod
    def forward(ctx, q, k, v, op, attn_mask, is_causal, scale, enable_gqa,  # type: ignore[override]
                temperature):
        out = _original(lambda: op(q, k, v))
        ctx.save_for_backward(q, k)
        ctx.args = (attn_mask, is_causal, scale, enable_gqa, temperature)
        ctx.v_heads = v.shape[-3] if v.ndim >= 3 else None
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        q, k = ctx.saved_tensors
        weights = attention_weights(q, k, *ctx.args)
        grad_v = weights.transpose(-2, -1) @ grad
        if ctx.v_heads is not None and grad_v.shape[-3] != ctx.v_heads:   # grouped-query attention
            groups = grad_v.shape[-3] // ctx.v_heads
            grad_v = grad_v.unflatten(-3, (ctx.v_heads, groups)).sum(-3)
        return None, None, grad_v, None, None, None, None, None, None
