"""The excitation-pullback context: a TorchFunctionMode that swaps backward rules, not modules.

Inside ``with excitation_pullbacks(...)`` every ReLU (``F.relu``, ``torch.relu``, ``Tensor.relu``,
their in-place forms, ``nn.ReLU``) and every max-pool (``F.max_pool{1,2,3}d`` in all forms,
``torch.max_pool*d``, the ``*_with_indices`` variants, ``nn.MaxPool*d``) is run through the
Functions of :mod:`whiteboxdl.pullbacks.gates`: the forward is the original op (bit-identical),
the backward is the soft rule. Optional rules cover SiLU, GELU, LayerNorm and attention.

The mode lives on PyTorch's thread-local mode stack: it catches functional calls, never mutates the
model, nests (the innermost context wins), is undone on exceptions, and two threads can use one
model with different temperatures. The rules are fixed at forward time, so ``backward()`` may be
called after the ``with`` block.

Example
-------
>>> import torch
>>> from whiteboxdl.pullbacks import excitation_pullbacks
>>> z = torch.tensor([-1.0, 2.0], requires_grad=True)
>>> with excitation_pullbacks(temperature=0.3):
...     torch.relu(z).sum().backward()
>>> [round(v, 4) for v in z.grad.tolist()]
[0.0344, 0.9987]
"""

from __future__ import annotations

import functools
import types
from typing import Callable, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from whiteboxdl.pullbacks.gates import (
    ConstantStatsLayerNorm,
    ConstantWeightsAttention,
    GateFn,
    PoolGeometry,
    SoftGate,
    SoftMaxPool,
    check_maxpool_rule,
    check_temperature,
    get_gate,
    normal_gate,
    recipe_inputs,
    sigmoid_gate,
)
from whiteboxdl.pullbacks import recipes
from whiteboxdl.pullbacks.recipes import attach, operand, recipe_of

#: Rules applied by default (the paper's: ReLU networks with max-pooling).
DEFAULT_RULES = ("relu", "maxpool")
#: Every rule known to the context (the later revision adds the non-ReLU layers).
ALL_RULES = ("relu", "maxpool", "silu", "gelu", "layernorm", "attention")

_RELU = (F.relu, torch.relu, torch.Tensor.relu)
_RELU_INPLACE = (torch.relu_, torch.Tensor.relu_)
_POOL_FUNCS: dict[object, tuple[int, Optional[bool]]] = {}   # func -> (dims, always tuple?)
for _n, _names in {1: ("max_pool1d",), 2: ("max_pool2d",), 3: ("max_pool3d",)}.items():
    _POOL_FUNCS[getattr(F, f"max_pool{_n}d")] = (_n, None)
    _POOL_FUNCS[getattr(F, f"max_pool{_n}d_with_indices")] = (_n, True)
    _POOL_FUNCS[getattr(torch, f"max_pool{_n}d")] = (_n, False)
_POOL_FUNCS[torch.max_pool1d_with_indices] = (1, True)
_POOL_FUNCS[torch._C._nn.max_pool2d_with_indices] = (2, True)
_POOL_FUNCS[torch._C._nn.max_pool3d_with_indices] = (3, True)
_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode",
              "return_indices")


def _bind(names: tuple[str, ...], args: tuple, kwargs: dict) -> dict:
    bound = dict(zip(names, args))
    for key, value in kwargs.items():
        bound["input" if key == "self" else key] = value
    return bound


def _wants_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad
                                           for t in tensors)


def _first_arg(args: tuple, kwargs: dict) -> tuple[Tensor, Callable[[Tensor], object]]:
    """The input tensor of a unary call and ``op(z)`` that repeats the call with ``z`` instead."""
    if args:
        rest = args[1:]
        return args[0], lambda func, z: func(z, *rest, **kwargs)
    key = "input" if "input" in kwargs else "self"
    others = {k: v for k, v in kwargs.items() if k != key}
    return kwargs[key], lambda func, z: func(z, **others)


class ExcitationPullbacks(TorchFunctionMode):
    """TorchFunctionMode applying the soft backward rules; use :func:`excitation_pullbacks`."""

    def __init__(self, temperature: float = 0.3, gate: str | GateFn = "sigmoid",
                 maxpool_temperature: float = 0.3, maxpool_rule: str = "smoothmax",
                 rules: Iterable[str] = DEFAULT_RULES, silu_temperature: float = 1.6,
                 gelu_temperature: float = 1.0, attention_temperature: float = 1.0,
                 recompute: bool = True):
        super().__init__()
        self.recompute = bool(recompute)
        self.temperature = check_temperature(temperature, "temperature")
        self.gate = get_gate(gate)
        self.maxpool_temperature = check_temperature(maxpool_temperature, "maxpool_temperature")
        self.maxpool_rule = check_maxpool_rule(maxpool_rule)
        self.silu_temperature = check_temperature(silu_temperature, "silu_temperature")
        self.gelu_temperature = check_temperature(gelu_temperature, "gelu_temperature")
        self.attention_temperature = check_temperature(attention_temperature,
                                                       "attention_temperature")
        rules = (rules,) if isinstance(rules, str) else tuple(rules)
        unknown = [r for r in rules if r not in ALL_RULES]
        if unknown:
            raise ValueError(f"unknown rules {unknown}; choose from {list(ALL_RULES)}")
        self.rules = rules
        handlers: dict[object, Callable] = {}
        if "relu" in rules:
            handlers.update({f: self._relu for f in _RELU + _RELU_INPLACE})
        if self.recompute and {"relu", "silu", "gelu"} & set(rules):
            handlers[F.batch_norm] = self._batch_norm
            handlers.update({f: self._add for f in (torch.add, torch.Tensor.add,
                                                    torch.Tensor.add_)})
        if "maxpool" in rules:
            handlers.update({f: self._maxpool for f in _POOL_FUNCS})
        if "silu" in rules:
            handlers[F.silu] = self._silu
        if "gelu" in rules:
            handlers[F.gelu] = self._gelu
        if "layernorm" in rules:
            handlers[F.layer_norm] = self._layer_norm
        if "attention" in rules:
            handlers[F.scaled_dot_product_attention] = self._sdpa
            handlers[F.multi_head_attention_forward] = self._mha
        self._handlers = handlers

    def __repr__(self) -> str:
        return (f"excitation_pullbacks(temperature={self.temperature}, rules={self.rules}, "
                f"maxpool_temperature={self.maxpool_temperature}, "
                f"maxpool_rule={self.maxpool_rule!r})")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = self._handlers.get(func)
        if handler is None:
            return func(*args, **kwargs)
        return handler(func, args, kwargs)

    # -- element-wise gates
    def _activation(self, func, args, kwargs, inplace: bool, gate: GateFn, temperature: float):
        z, call = _first_arg(args, kwargs)
        if not _wants_grad(z):
            return func(*args, **kwargs)
        recompute = recipe_of(z) if self.recompute else None
        inputs = recipe_inputs(recompute.tensors) \
            if recompute is not None and recompute.sums_to(z) else ()
        return SoftGate.apply(z, lambda t: call(func, t), gate, temperature, inplace, recompute,
                              *inputs)

    # -- recipes: pre-activations recomputed in backward instead of stored (see recipes.py)
    def _batch_norm(self, func, args, kwargs):
        out = func(*args, **kwargs)
        if isinstance(out, Tensor) and _wants_grad(out):
            recipe = recipes.batch_norm(func, args, kwargs, out)
            if recipe is not None:
                attach(out, recipe)
        return out

    def _add(self, func, args, kwargs):
        if len(args) != 2 or kwargs or not all(isinstance(a, Tensor) for a in args) \
                or not (recipe_of(args[0]) or recipe_of(args[1])):
            return func(*args, **kwargs)
        inplace = func is torch.Tensor.add_
        if inplace and recipe_of(args[0]) is None:
            return func(*args, **kwargs)
        left, right = operand(args[0]), operand(args[1])
        out = func(*args, **kwargs)
        if _wants_grad(out):
            # a recomputed left operand is a fresh temporary: add into it (one allocation less)
            into_left = inplace or (recipe_of(args[0]) is not None
                                    and out.shape == args[0].shape and out.dtype == args[0].dtype)
            attach(out, recipes.add(left, right, into_left))
        return out

    def _relu(self, func, args, kwargs):
        inplace = func in _RELU_INPLACE or (func is F.relu and bool(
            args[1] if len(args) > 1 else kwargs.get("inplace", False)))
        return self._activation(func, args, kwargs, inplace, self.gate, self.temperature)

    def _silu(self, func, args, kwargs):
        inplace = bool(args[1] if len(args) > 1 else kwargs.get("inplace", False))
        return self._activation(func, args, kwargs, inplace, sigmoid_gate, self.silu_temperature)

    def _gelu(self, func, args, kwargs):
        return self._activation(func, args, kwargs, False, normal_gate, self.gelu_temperature)

    # -- max-pool
    def _maxpool(self, func, args, kwargs):
        bound = _bind(_POOL_ARGS, args, kwargs)
        x = bound["input"]
        if not _wants_grad(x):
            return func(*args, **kwargs)
        n, _ = _POOL_FUNCS[func]
        geometry = PoolGeometry(n, bound["kernel_size"], bound.get("stride"),
                                bound.get("padding", 0), bound.get("dilation", 1))
        _, call = _first_arg(args, kwargs)
        return SoftMaxPool.apply(x, lambda t: call(func, t), geometry, self.maxpool_temperature,
                                 self.maxpool_rule)

    # -- LayerNorm
    def _layer_norm(self, func, args, kwargs):
        b = _bind(("input", "normalized_shape", "weight", "bias", "eps"), args, kwargs)
        x, weight, bias = b["input"], b.get("weight"), b.get("bias")
        if not _wants_grad(x, weight, bias):
            return func(*args, **kwargs)
        shape, eps = b["normalized_shape"], b.get("eps", 1e-5)
        n_dims = 1 if isinstance(shape, int) else len(shape)
        return ConstantStatsLayerNorm.apply(x, weight, bias,
                                            lambda t, w, bb: func(t, shape, w, bb, eps),
                                            n_dims, eps)

    # -- attention
    def _sdpa(self, func, args, kwargs):
        b = _bind(("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale"),
                  args, kwargs)
        q, k, v = b["query"], b["key"], b["value"]
        if not _wants_grad(q, k, v):
            return func(*args, **kwargs)
        if b.get("dropout_p", 0.0) > 0:
            raise ValueError(f"the attention rule needs dropout_p=0 (call model.eval()), got "
                             f"dropout_p={b['dropout_p']}")
        rest = {key: val for key, val in b.items() if key not in ("query", "key", "value")}
        return ConstantWeightsAttention.apply(
            q, k, v, lambda q_, k_, v_: func(q_, k_, v_, **rest), b.get("attn_mask"),
            bool(b.get("is_causal", False)), b.get("scale"), bool(b.get("enable_gqa", False)),
            self.attention_temperature)

    def _mha(self, func, args, kwargs):
        with _MultiheadAttentionWeights(self):
            return _without_dispatch(func)(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def _without_dispatch(func):
    """A copy of a ``torch.nn.functional`` function that skips its own ``__torch_function__``
    check, so a mode sees the calls *inside* it (here: softmax and bmm of the attention)."""
    namespace = dict(func.__globals__)
    namespace["has_torch_function"] = lambda *args: False
    copy = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__,
                              func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    return copy


class _WeightsConstantBmm(torch.autograd.Function):
    """``bmm(A, v)`` (original forward) whose backward treats ``A`` as the constant ``A_T``."""

    @staticmethod
    def forward(ctx, weights, v, soft_weights):  # type: ignore[override]
        with torch._C.DisableTorchFunction():
            out = torch.bmm(weights, v)
        ctx.save_for_backward(soft_weights)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (soft,) = ctx.saved_tensors
        return None, soft.transpose(-2, -1) @ grad, None


class _MultiheadAttentionWeights(TorchFunctionMode):
    """Active only inside ``F.multi_head_attention_forward``: the explicit-weights path computes
    ``softmax(scores)`` then ``bmm(weights, v)``; the weights become constants (softened by T)."""

    def __init__(self, outer: ExcitationPullbacks):
        super().__init__()
        self.outer = outer
        self.soft: dict[int, tuple[Tensor, Tensor]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return self.outer._sdpa(func, args, kwargs)
        if func is F.dropout and (args[1] if len(args) > 1 else kwargs.get("p", 0.5)) > 0 \
                and (args[2] if len(args) > 2 else kwargs.get("training", True)):
            raise ValueError("the attention rule needs attention dropout off (call model.eval())")
        out = func(*args, **kwargs)
        if func is F.softmax:
            scores = args[0] if args else kwargs["input"]
            temperature = self.outer.attention_temperature
            soft = out if temperature == 1.0 else torch.softmax(scores / temperature, dim=-1)
            self.soft[id(out)] = (out, soft.detach())
        elif func is torch.bmm and args and id(args[0]) in self.soft \
                and self.soft[id(args[0])][0] is args[0]:
            return _WeightsConstantBmm.apply(args[0], args[1], self.soft[id(args[0])][1])
        return out


def excitation_pullbacks(temperature: float = 0.3, gate: str | GateFn = "sigmoid",
                         maxpool_temperature: float = 0.3, maxpool_rule: str = "smoothmax",
                         rules: Iterable[str] = DEFAULT_RULES, *, silu_temperature: float = 1.6,
                         gelu_temperature: float = 1.0, attention_temperature: float = 1.0,
                         recompute: bool = True) -> ExcitationPullbacks:
    """Context manager: inside it, backward passes compute excitation pullbacks.

    Parameters
    ----------
    temperature : ReLU gate temperature ``T`` (> 0); 0.3 in the paper.
    gate : ``"sigmoid"`` (``sigmoid(z/T)``, paper) or ``"normal"`` (``Phi(z/T)``, later revision).
    maxpool_temperature : temperature of the soft max-pool routing.
    maxpool_rule : ``"smoothmax"`` (derivative of the smooth max, paper) or ``"detached"``
        (detached softmax routing, later revision).
    rules : which ops to intercept, from ``ALL_RULES``; default ``("relu", "maxpool")``.
    silu_temperature, gelu_temperature, attention_temperature : for the non-ReLU rules.
    recompute : recompute pre-activations made by eval-mode BatchNorm (and residual additions of
        them) in backward instead of storing them; bit-identical, saves memory.

    Example
    -------
    >>> import torch, torchvision
    >>> model = torchvision.models.resnet18(num_classes=10).eval()
    >>> x = torch.rand(1, 3, 32, 32, requires_grad=True)
    >>> with excitation_pullbacks(temperature=0.3):
    ...     model(x)[0, 3].backward()
    >>> x.grad.shape
    torch.Size([1, 3, 32, 32])
    """
    return ExcitationPullbacks(temperature, gate, maxpool_temperature, maxpool_rule, rules,
                               silu_temperature, gelu_temperature, attention_temperature,
                               recompute)
