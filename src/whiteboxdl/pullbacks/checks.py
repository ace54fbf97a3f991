"""Checks at the door of the attribution entry points: inputs, targets, model outputs.

Targets are class indices of a classifier's ``(N, classes)`` logits: one int for the whole batch,
or one per example (list, 1-D integer tensor or NumPy array). Negative indices are refused (no
wrap-around to the last class), as are floats, booleans, strings, nested lists and ``None``.

Example
-------
>>> import torch
>>> from whiteboxdl.pullbacks.checks import targets_tensor
>>> targets_tensor([1, 7], n=2, device="cpu").tolist()
[1, 7]
>>> targets_tensor(-1, n=2, device="cpu")
Traceback (most recent call last):
ValueError: target -1 is negative; class indices start at 0 (negative indices do not count from the end here)
"""

from __future__ import annotations

import warnings
from numbers import Integral
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

TargetLike = Union[int, Sequence[int], Tensor, np.ndarray]


def check_inputs(inputs: Any, name: str = "inputs",
                 bounds: Optional[tuple[float, float]] = None) -> None:
    """A non-empty, finite, floating-point tensor ``(N, ...)`` (inside ``bounds`` if given)."""
    if not isinstance(inputs, Tensor):
        hint = " (convert with torch.from_numpy(x).float())" if isinstance(inputs, np.ndarray) \
            else ""
        raise TypeError(f"{name} must be a torch.Tensor (N, ...), got "
                        f"{type(inputs).__name__}{hint}")
    if not inputs.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {inputs.dtype} "
                        "(convert with .float())")
    if inputs.ndim < 2:
        raise ValueError(f"{name} must have a batch dimension (N, ...), got shape "
                         f"{tuple(inputs.shape)}")
    if inputs.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(inputs.shape)})")
    if not torch.isfinite(inputs).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    if bounds is not None:
        lo, hi = float(inputs.min()), float(inputs.max())
        if lo < bounds[0] or hi > bounds[1]:
            raise ValueError(f"{name} range [{lo:.4g}, {hi:.4g}] lies outside bounds {bounds}; "
                             "rescale the inputs (e.g. unit_to_signed for [-1, 1] models) or "
                             "pass matching bounds")


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def targets_tensor(target: Optional[TargetLike], n: int, device: Any) -> Tensor:
    """One class index per example (int64, shape ``(n,)``) from an int or one index per example.

    Raises ``TypeError`` for a value that is not integer class indices and ``ValueError`` for a
    negative index or the wrong count (the upper bound is checked by :func:`check_target_range`
    once the number of classes is known).
    """
    if target is None:
        raise ValueError("a target class is required: pass an int (one class for the whole "
                         "batch) or one class index per example")
    if isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"targets must be integer class indices, got a {target.dtype} tensor")
        if target.ndim > 1:
            raise ValueError(f"targets must be one index per example (1-D), got shape "
                             f"{tuple(target.shape)}")
        t = target.to(device=device, dtype=torch.long).reshape(-1)
    elif isinstance(target, np.ndarray):
        if not np.issubdtype(target.dtype, np.integer) or target.ndim > 1:
            raise TypeError(f"targets must be a 1-D integer array, got {target.dtype} with shape "
                            f"{target.shape}")
        t = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    elif isinstance(target, Integral) and _is_int(target):
        t = torch.tensor([int(target)], dtype=torch.long, device=device)
    elif isinstance(target, (list, tuple)):
        bad = [v for v in target if not _is_int(v) and not (
            isinstance(v, Tensor) and v.ndim == 0 and not v.is_floating_point()
            and v.dtype != torch.bool)]
        if bad:
            raise TypeError(f"targets must be integer class indices, got {bad[0]!r} in "
                            f"{list(target)!r}")
        t = torch.tensor([int(v) for v in target], dtype=torch.long, device=device)
    else:
        raise TypeError(f"target must be an int or one class index per example, got {target!r} "
                        f"({type(target).__name__})")
    if t.numel() == 0:
        raise ValueError("targets are empty; pass an int or one class index per example")
    negative = t[t < 0]
    if negative.numel():
        raise ValueError(f"target {int(negative[0])} is negative; class indices start at 0 "
                         "(negative indices do not count from the end here)")
    if t.numel() == 1:
        return t.expand(n)
    if t.numel() != n:
        raise ValueError(f"got {t.numel()} targets for a batch of {n}; pass one int or one per "
                         "example")
    return t


def check_logits(out: Any, n: int) -> Tensor:
    """The model's output must be ``(n, classes)`` logits."""
    if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != n:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the model must return (N, classes) logits for N={n} inputs, got {shape}")
    return out


def check_target_range(t: Tensor, num_classes: int) -> None:
    """Every target must be a class of the model (``0..num_classes-1``)."""
    if int(t.max()) >= num_classes:
        raise ValueError(f"targets must lie in [0, {num_classes - 1}] (the model has "
                         f"{num_classes} classes), got {sorted(set(t.tolist()))}")


def warn_if_training(model: Callable, owner: object) -> None:
    """Warn once per ``owner`` that a model in training mode is evaluated in eval mode."""
    if isinstance(model, nn.Module) and model.training and not getattr(owner, "_warned", False):
        owner._warned = True  # type: ignore[attr-defined]
        warnings.warn(f"{type(model).__name__} is in training mode; pullbacks assume eval mode, "
                      "so each call runs it in eval mode (BatchNorm statistics and dropout "
                      "untouched) and restores its mode afterwards. Call model.eval() to "
                      "silence this.", UserWarning, stacklevel=3)
