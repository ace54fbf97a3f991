"""Recompute cheap pre-activations in backward instead of storing them (memory parity).

A vanilla ReLU stores only its output, which the next layer stores anyway; a soft gate needs the
pre-activation ``z`` too. In CNNs ``z`` is almost always the output of an eval-mode BatchNorm
(whose input autograd already keeps) or a sum of such outputs and other tensors (residual
branches). Inside the pullback context such tensors get a *recipe*: a closure that recomputes
them bit-identically from tensors that are alive anyway, and the list of its summands (*terms*),
so the gate's backward can also hand each summand's input its gradient directly (an eval-mode
BatchNorm is the per-channel affine map ``x -> scale * x + shift``). A recipe is valid only while
the tensor's version counter is unchanged (no in-place change since it was made).

Example
-------
>>> import torch
>>> from whiteboxdl.pullbacks.recipes import attach, leaf, recipe_of
>>> a = torch.ones(2)
>>> attach(a, leaf(torch.ones(2)))
>>> recipe_of(a) is not None, (a.add_(1), recipe_of(a))[1] is None
(True, True)
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

_ATTR = "_whiteboxdl_recipe"
_BN_ARGS = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum",
            "eps")

Grads = list[Optional[Tensor]]


class LeafTerm:
    """A summand kept by reference (one tensor); its gradient is the sum's gradient."""

    count = 1

    def __init__(self, tensor: Tensor):
        self.shape, self.dtype = tensor.shape, tensor.dtype

    def pullback(self, grad: Tensor, tensors: Sequence[Tensor], wanted: Sequence[bool]) -> Grads:
        return [grad if wanted[0] else None]


class BatchNormTerm:
    """An eval-mode ``batch_norm(input, running_mean, running_var, weight, bias, eps)`` summand:
    ``scale * input + shift`` per channel (dim 1) with ``scale = weight / sqrt(var + eps)``."""

    def __init__(self, out: Tensor, eps: float, has_weight: bool, has_bias: bool):
        self.shape, self.dtype, self.eps = out.shape, out.dtype, eps
        self.has_weight, self.has_bias = has_weight, has_bias
        self.count = 3 + has_weight + has_bias

    def pullback(self, grad: Tensor, tensors: Sequence[Tensor], wanted: Sequence[bool]) -> Grads:
        x, mean, var = tensors[:3]
        weight = tensors[3] if self.has_weight else None
        channel = (1, -1) + (1,) * (x.ndim - 2)
        invstd = torch.rsqrt(var + self.eps)
        grads: Grads = [None] * self.count
        if wanted[0]:
            scale = invstd * weight if weight is not None else invstd
            grads[0] = grad * scale.to(grad.dtype).view(channel)
        dims = [d for d in range(grad.ndim) if d != 1]
        if self.has_weight and wanted[3]:
            normalised = (x - mean.view(channel)) * invstd.view(channel)
            grads[3] = (grad * normalised).sum(dims).to(tensors[3].dtype)
        if self.has_bias and wanted[-1]:
            grads[-1] = grad.sum(dims).to(tensors[-1].dtype)
        return grads


class Recipe:
    """``compute(*tensors)`` recomputes a tensor; ``tensors`` are handed to ``save_for_backward``
    (so autograd frees them after backward and detects in-place changes); ``compute`` holds none.
    ``terms`` are the summands, each owning the next ``term.count`` entries of ``tensors``.
    """

    def __init__(self, tensors: tuple[Tensor, ...], compute: Callable[..., Tensor],
                 terms: tuple):
        self.tensors, self.compute, self.terms = tensors, compute, terms

    def __call__(self) -> Tensor:
        return self.compute(*self.tensors)

    def sums_to(self, z: Tensor) -> bool:
        """Whether every summand has ``z``'s shape and dtype (no broadcasting or promotion), so
        :func:`pullback` applies."""
        return all(t.shape == z.shape and t.dtype == z.dtype for t in self.terms)


def pullback(terms: Sequence, grad: Tensor, tensors: Sequence[Tensor],
             wanted: Sequence[bool]) -> Grads:
    """Gradients of ``sum(terms)`` for each of a recipe's ``tensors`` given the sum's gradient
    ``grad`` (``None`` where ``wanted`` is false or the entry has none, e.g. running statistics).
    Takes the terms, not the recipe: the recipe holds its tensors, which must not outlive
    ``save_for_backward``."""
    grads: Grads = []
    for term in terms:
        n = len(grads)
        grads += term.pullback(grad, tensors[n:n + term.count], wanted[n:n + term.count])
    return grads


def leaf(tensor: Tensor) -> Recipe:
    """A tensor kept by reference (saved for backward as it is)."""
    return Recipe((tensor,), lambda t: t, (LeafTerm(tensor),))


def batch_norm(func: Callable, args: tuple, kwargs: dict, out: Tensor) -> Optional[Recipe]:
    """Recipe of ``out = func(*args, **kwargs)``, a ``F.batch_norm`` call, if it ran in eval mode
    with running statistics (else ``None``)."""
    bound = dict(zip(_BN_ARGS, args), **kwargs)
    x, mean, var = bound["input"], bound.get("running_mean"), bound.get("running_var")
    weight, bias = bound.get("weight"), bound.get("bias")
    if bound.get("training", False) or not all(isinstance(t, Tensor) for t in (x, mean, var)):
        return None
    eps = float(bound.get("eps", 1e-5))
    has_weight, has_bias = weight is not None, bias is not None
    tensors = tuple(t for t in (x, mean, var, weight, bias) if t is not None)

    def compute(x, mean, var, *affine):                 # holds no tensor
        w = affine[0] if has_weight else None
        b = affine[-1] if has_bias else None
        return func(x, mean, var, w, b, False, 0.0, eps)

    return Recipe(tensors, compute, (BatchNormTerm(out, eps, has_weight, has_bias),))


def add(left: Recipe, right: Recipe, into_left: bool) -> Recipe:
    """Recipe ``left() + right()`` (``into_left``: added in place into the fresh left result)."""
    n = len(left.tensors)
    lc, rc = left.compute, right.compute
    op = torch.Tensor.add_ if into_left else torch.add
    return Recipe(left.tensors + right.tensors, lambda *ts: op(lc(*ts[:n]), rc(*ts[n:])),
                  left.terms + right.terms)


def attach(tensor: Tensor, recipe: Recipe) -> None:
    """Record that ``recipe`` recomputes ``tensor`` as it is now."""
    setattr(tensor, _ATTR, (tensor._version, recipe))


def recipe_of(tensor: object) -> Optional[Recipe]:
    """The tensor's recipe if it has one and was not modified in place since."""
    if not isinstance(tensor, Tensor):
        return None
    entry = getattr(tensor, _ATTR, None)
    if entry is None or entry[0] != tensor._version:
        return None
    return entry[1]


def operand(tensor: Tensor) -> Recipe:
    """An operand's own recipe, or the tensor itself kept by reference."""
    return recipe_of(tensor) or leaf(tensor)
