"""Gradients of the "path kernel machine" of a snapshot: the model with gates frozen at a pattern.

Inside :class:`FrozenGates` every ReLU keeps its forward ``relu(z)`` but its backward multiplies by
a fixed 0/1 mask taken from a stored pattern, and every 2-d max-pool routes its gradient to the
stored window argmax. The input gradient of a logit is then exactly ``W₁ᵀD₁W₂ᵀD₂…w`` with the
``D`` of that pattern — the gradient of the model that is linear in path space with the snapshot's
paths switched on.

Example
-------
>>> import torch
>>> from whiteboxdl.stability.patterns import record_patterns
>>> from whiteboxdl.stability.frozen import frozen_gate_gradient, input_gradient
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
>>> x = torch.randn(5, 3)
>>> own = record_patterns(net, x)          # the model's own pattern gives the vanilla gradient
>>> g = frozen_gate_gradient(net, x, torch.zeros(5, dtype=torch.long), own.layers, own.values)
>>> torch.allclose(g, input_gradient(net, x, torch.zeros(5, dtype=torch.long)))
True
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager, Sequence

import numpy as np
import torch
from torch import nn

from whiteboxdl.stability.patterns import LayerInfo, _Interceptor, pool_call


class _MaskedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(mask)
        return torch.relu(z)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return grad * mask.to(grad.dtype), None


class _RoutedMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, flat_index: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat_index)
        ctx.in_shape = x.shape
        return out.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (flat_index,) = ctx.saved_tensors
        n, c, h, w = ctx.in_shape
        grad_in = grad.new_zeros(n, c, h * w)
        grad_in.scatter_add_(2, flat_index.reshape(n, c, -1), grad.reshape(n, c, -1))
        return grad_in.view(n, c, h, w), None, None


class FrozenGates:
    """Context manager: ReLU/max-pool backward follow a fixed pattern (forward unchanged).

    Parameters
    ----------
    layers : the layers of the pattern, in call order (``PatternStore.layers`` / ``Snapshot.layers``).
    values : per layer name, the pattern of the batch about to be run: bool ``(n, *shape)`` for
        ReLUs, uint8 window argmax for max-pools.

    The k-th ReLU/max-pool call of a forward pass uses ``layers[k]``; kind and shape are checked.
    In-place ReLUs return a new tensor inside the context.
    """

    def __init__(self, layers: Sequence[LayerInfo], values: dict[str, np.ndarray | torch.Tensor]):
        self.layers = list(layers)
        self.values = {k: torch.as_tensor(np.asarray(v)) for k, v in values.items()}
        self._calls = 0
        self._mode = _Interceptor(self._relu, self._pool)

    def _next(self, kind: str, shape: tuple[int, ...]) -> tuple[LayerInfo, torch.Tensor]:
        k = self._calls
        self._calls += 1
        if k >= len(self.layers):
            raise ValueError(f"the model made more ReLU/max-pool calls ({k + 1}) than the pattern "
                             f"has layers ({len(self.layers)})")
        layer = self.layers[k]
        value = self.values[layer.name]
        if layer.kind != kind or tuple(shape) != tuple(value.shape):
            raise ValueError(f"call {k} is a {kind} of shape {tuple(shape)}, but the pattern's layer "
                             f"{layer.name!r} is a {layer.kind} with values of shape "
                             f"{tuple(value.shape)}")
        return layer, value

    def _relu(self, func, z, args, kwargs):
        _, mask = self._next("relu", tuple(z.shape))
        return _MaskedReLU.apply(z, mask.to(z.device))

    def _pool(self, func, args, kwargs):
        with torch.no_grad():
            result, idx, geometry = pool_call(func, args, kwargs)
        out = result[0] if isinstance(result, tuple) else result
        layer, local = self._next("maxpool", tuple(out.shape))
        if out.dim() != 4:
            raise ValueError(f"frozen max-pool routing needs 4-d input, got {tuple(out.shape)}")
        if layer.geometry is not None and layer.geometry != geometry:
            raise ValueError(f"max-pool {layer.name!r}: geometry {geometry} differs from the "
                             f"pattern's {layer.geometry}")
        x = args[0] if args else kwargs["input"]
        routed = _RoutedMaxPool.apply(x, geometry.flat_index(local.to(x.device)), out)
        return (routed, idx) if isinstance(result, tuple) else routed

    def __enter__(self) -> "FrozenGates":
        self._calls = 0
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)
        if exc[0] is None and self._calls != len(self.layers):
            raise ValueError(f"the model made {self._calls} ReLU/max-pool calls, the pattern has "
                             f"{len(self.layers)} layers")


def _check_target(target: torch.Tensor, n: int) -> torch.Tensor:
    target = torch.as_tensor(target, dtype=torch.long)
    if target.shape != (n,):
        raise ValueError(f"target must hold one class index per input ({n}), got {tuple(target.shape)}")
    return target


def input_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                   context: Callable[[], ContextManager] = nullcontext,
                   batch_size: int = 256) -> torch.Tensor:
    """Gradient of the ``target`` logit w.r.t. each input, computed inside ``context()``.

    The model runs in eval mode (restored afterwards); weights get no gradient.
    """
    target = _check_target(target, len(x))
    was_training = model.training
    model.eval()
    grads = []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].detach().clone().requires_grad_(True)
            with torch.enable_grad(), context():
                logits = model(xb)
                picked = logits.gather(1, target[start:start + batch_size, None].to(logits.device))
            (grad,) = torch.autograd.grad(picked.sum(), xb)
            grads.append(grad.detach())
    finally:
        model.train(was_training)
    return torch.cat(grads)


def frozen_gate_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
                         layers: Sequence[LayerInfo], values: dict[str, np.ndarray],
                         batch_size: int = 256) -> torch.Tensor:
    """Input gradient of the ``target`` logit with every gate frozen at ``values`` (one row per
    input of ``x``); see :class:`FrozenGates`."""
    n = len(x)
    for layer in layers:
        if len(values[layer.name]) != n:
            raise ValueError(f"pattern of {layer.name!r} has {len(values[layer.name])} rows for "
                             f"{n} inputs")
    grads = []
    for start in range(0, n, batch_size):
        part = {k: np.asarray(v)[start:start + batch_size] for k, v in values.items()}
        grads.append(input_gradient(model, x[start:start + batch_size],
                                    torch.as_tensor(target)[start:start + batch_size],
                                    context=lambda part=part: FrozenGates(layers, part),
                                    batch_size=batch_size))
    return torch.cat(grads)
