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
>>> from whiteboxdl.pullbacks.recipes import attach, recipe_of
>>> a = torch.ones(2)
>>> attach(a, lambda: torch.ones(2))
>>> recipe_of(a) is not None, (a.add_(1), recipe_of(a))[1] is None
(True, True)
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

_ATTR = "_whiteboxdl_recipe"

Recipe = Callable[[], Tensor]


def attach(tensor: Tensor, recipe: Recipe) -> None:
    """Record that ``recipe()`` recomputes ``tensor`` as it is now."""
    setattr(tensor, _ATTR, (tensor._version, recipe))


def recipe_of(tensor: object) -> Optional[Recipe]:
    """The tensor's recipe if it has one and was not modified in place since."""
    entry = getattr(tensor, _ATTR, None) if isinstance(tensor, Tensor) else None
    if entry is None or entry[0] != tensor._version:
        return None
    return entry[1]


def _kept(tensor: Tensor) -> Recipe:
    """Recipe of a tensor held by reference (it must not change before backward)."""
    version = tensor._version

    def get() -> Tensor:
        if tensor._version != version:
            raise RuntimeError("a tensor needed to recompute a pre-activation for the pullback "
                               "backward was modified in place after use")
        return tensor

    return get


def operand_recipe(value: object) -> Recipe | object:
    """Recipe for an operand: its own recipe, a by-reference getter, or a Python scalar."""
    if isinstance(value, Tensor):
        return recipe_of(value) or _kept(value)
    return value


def evaluate(part) -> object:
    return part() if callable(part) else part
