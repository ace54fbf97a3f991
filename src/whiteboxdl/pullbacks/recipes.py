"""Recompute cheap pre-activations in backward instead of storing them (memory parity).

A vanilla ReLU stores only its output, which the next layer stores anyway; a soft gate needs the
pre-activation ``z`` too. In CNNs ``z`` is almost always the output of an eval-mode BatchNorm
(whose input autograd already keeps) or that plus a residual branch. Inside the pullback context
such tensors get a *recipe*: a closure that recomputes them bit-identically from tensors that are
alive anyway. A recipe is valid only while the tensor's version counter is unchanged (no in-place
change since it was made).

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

from typing import Callable, Optional

import torch
from torch import Tensor

_ATTR = "_whiteboxdl_recipe"


class Recipe:
    """``compute(*tensors)`` recomputes a tensor; ``tensors`` are handed to ``save_for_backward``
    (so autograd frees them after backward and detects in-place changes); ``compute`` holds none.
    """

    def __init__(self, tensors: tuple[Tensor, ...], compute: Callable[..., Tensor]):
        self.tensors, self.compute = tensors, compute

    def __call__(self) -> Tensor:
        return self.compute(*self.tensors)


def leaf(tensor: Tensor) -> Recipe:
    """A tensor kept by reference (saved for backward as it is)."""
    return Recipe((tensor,), lambda t: t)


def call(func: Callable, args: tuple, kwargs: dict) -> Recipe:
    """Recipe ``func(*args, **kwargs)``; the tensor arguments become the saved tensors."""
    tensors = tuple(a for a in list(args) + list(kwargs.values()) if isinstance(a, Tensor))
    template_args = [None if isinstance(a, Tensor) else a for a in args]
    template_kwargs = {k: (None if isinstance(v, Tensor) else v) for k, v in kwargs.items()}
    arg_slots = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    kw_slots = [k for k, v in kwargs.items() if isinstance(v, Tensor)]

    def compute(*ts: Tensor) -> Tensor:
        new_args, new_kwargs = list(template_args), dict(template_kwargs)
        for i, t in zip(arg_slots, ts):
            new_args[i] = t
        for k, t in zip(kw_slots, ts[len(arg_slots):]):
            new_kwargs[k] = t
        return func(*new_args, **new_kwargs)

    return Recipe(tensors, compute)


def combine(op: Callable[[Tensor, Tensor], Tensor], left: Recipe, right: Recipe) -> Recipe:
    """Recipe ``op(left(), right())``."""
    n = len(left.tensors)
    lc, rc = left.compute, right.compute
    return Recipe(left.tensors + right.tensors, lambda *ts: op(lc(*ts[:n]), rc(*ts[n:])))


def attach(tensor: Tensor, recipe: Recipe) -> None:
    """Record that ``recipe`` recomputes ``tensor`` as it is now."""
    setattr(tensor, _ATTR, (tensor._version, recipe))


def recipe_of(tensor: object) -> Optional[Recipe]:
    """The tensor's recipe if it has one and was not modified in place since."""
    entry = getattr(tensor, _ATTR, None) if isinstance(tensor, Tensor) else None
    if entry is None or entry[0] != tensor._version:
        return None
    return entry[1]


def operand(tensor: Tensor) -> Recipe:
    """An operand's own recipe, or the tensor itself kept by reference."""
    return recipe_of(tensor) or leaf(tensor)
