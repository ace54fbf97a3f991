"""Projected gradient ascent in pixel space along excitation pullbacks (the paper's figures).

For a target class ``c`` and ``K`` steps: ``g`` = pullback of the target logit w.r.t. the input;
``g <- alpha * g / ||g||_2`` per sample; ``x <- x + g``; optionally project ``x - x0`` onto the L2
ball of radius ``eps``; clamp to ``bounds`` every step, only after the last one, or never.
The explanation is ``x_K - x0``. :class:`GradientAscent` is the same with vanilla gradients.

Example
-------
>>> import torch
>>> from whiteboxdl.pullbacks import PullbackAscent
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.ReLU(),
...                           torch.nn.Linear(16, 3)).eval()
>>> res = PullbackAscent(net, steps=3, alpha=0.5).ascend(torch.zeros(2, 3, 2, 2), target=[0, 2])
>>> res.perturbed.shape, res.target_logits.shape
(torch.Size([2, 3, 2, 2]), torch.Size([4, 2]))
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from numbers import Real
from typing import Callable, Iterable, Optional, Sequence, Union

import torch
from captum.attr._utils.attribution import Attribution
from torch import Tensor

from whiteboxdl.pullbacks.attribute import warn_if_training
from whiteboxdl.pullbacks.gates import GateFn
from whiteboxdl.pullbacks.mode import DEFAULT_RULES, excitation_pullbacks

TargetLike = Union[int, Sequence[int], Tensor]
CLIP_MODES = ("every", "last", None)


@dataclass
class AscentResult:
    """Outcome of an ascent: ``perturbed`` = x_K, ``difference`` = x_K - x0 (both like the input),
    ``target_logits`` = (steps + 1, N) logit of each example's target before each step and at
    the end."""

    perturbed: Tensor
    difference: Tensor
    target_logits: Tensor


def _positive(value, name: str, allow_none: bool = False) -> Optional[float]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return float(value)


def targets_tensor(target: TargetLike, n: int, device) -> Tensor:
    """One class index per example from an int, a sequence or a tensor; ``ValueError`` if not."""
    t = torch.as_tensor(target, device=device)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices, got {target!r}")
    t = t.long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"got {t.numel()} targets for a batch of {n}; pass one int or one per "
                         "example")
    return t


class PullbackAscent(Attribution):
    """Pixel-space ascent of the target logit along excitation pullbacks.

    Parameters
    ----------
    model : classifier mapping (N, ...) inputs to (N, classes) logits, in eval mode.
    steps : number of steps K (>= 1). alpha : L2 length of each step (> 0).
    eps : radius of the L2 ball around x0 that x - x0 is projected onto, or None.
    clip : ``"every"`` step, only the ``"last"``, or ``None`` (never) clamp to ``bounds``.
    bounds : (low, high) input range (the paper's images live in [-1, 1]).
    temperature, gate, maxpool_temperature, maxpool_rule, rules : see ``excitation_pullbacks``.

    Example
    -------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()
    >>> PullbackAscent(net, steps=1, alpha=0.1).attribute(torch.zeros(1, 3), target=0).norm()
    tensor(0.1000)
    """

    def __init__(self, model: Callable[[Tensor], Tensor], steps: int = 5, alpha: float = 20.0,
                 eps: Optional[float] = None, clip: Optional[str] = "every",
                 bounds: Optional[tuple[float, float]] = (-1.0, 1.0), temperature: float = 0.3,
                 gate: str | GateFn = "sigmoid", maxpool_temperature: float = 0.3,
                 maxpool_rule: str = "smoothmax", rules: Iterable[str] = DEFAULT_RULES) -> None:
        super().__init__(model)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        self.steps = steps
        self.alpha = _positive(alpha, "alpha")
        self.eps = _positive(eps, "eps", allow_none=True)
        if clip not in CLIP_MODES:
            raise ValueError(f"clip must be one of {CLIP_MODES}, got {clip!r}")
        self.clip = clip
        if bounds is not None:
            lo, hi = (float(b) for b in bounds)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"bounds must be finite (low, high) with low < high, got {bounds!r}")
            bounds = (lo, hi)
        elif clip is not None:
            raise ValueError(f"clip={clip!r} needs bounds; pass bounds=(low, high) or clip=None")
        self.bounds = bounds
        self._context_kwargs = dict(temperature=temperature, gate=gate,
                                    maxpool_temperature=maxpool_temperature,
                                    maxpool_rule=maxpool_rule, rules=tuple(rules))
        self._context()                                 # validate the rule settings now
        self._warned = False

    def _context(self):
        return excitation_pullbacks(**self._context_kwargs)

    def _check_inputs(self, inputs: Tensor) -> None:
        if not torch.is_tensor(inputs) or not inputs.is_floating_point() or inputs.ndim < 2:
            raise ValueError("inputs must be a floating-point tensor (N, ...) with a batch "
                             f"dimension, got {getattr(inputs, 'shape', type(inputs).__name__)}")
        if inputs.shape[0] == 0:
            raise ValueError("inputs is an empty batch")
        if not torch.isfinite(inputs).all():
            raise ValueError("inputs contain NaN or infinite values")
        if self.bounds is not None:
            lo, hi = float(inputs.min()), float(inputs.max())
            if lo < self.bounds[0] or hi > self.bounds[1]:
                raise ValueError(f"inputs range [{lo:.4g}, {hi:.4g}] lies outside bounds "
                                 f"{self.bounds}; rescale the inputs (e.g. unit_to_signed for "
                                 "[-1, 1] models) or pass matching bounds")

    def _target_logit(self, x: Tensor, t: Tensor, check: bool = True) -> Tensor:
        """The targets' logits; ``check`` validates the output shape and the targets (this
        waits for the device, so the ascent does it at its first step only)."""
        out = self.forward_func(x)
        if check and out.ndim != 2:
            raise ValueError(f"the model must return (N, classes) logits, got shape "
                             f"{tuple(out.shape)}")
        if check and (int(t.min()) < 0 or int(t.max()) >= out.shape[1]):
            raise ValueError(f"targets must lie in [0, {out.shape[1] - 1}], got "
                             f"{sorted(set(t.tolist()))}")
        return out.gather(1, t[:, None])[:, 0]

    def _run(self, inputs: Tensor, target: TargetLike, final_logits: bool) -> AscentResult:
        warn_if_training(self.forward_func, self)
        self._check_inputs(inputs)
        t = targets_tensor(target, inputs.shape[0], inputs.device)
        x0 = inputs.detach()
        x = x0.clone()
        logits = []
        for step_index in range(self.steps):
            x.requires_grad_(True)
            with torch.enable_grad(), self._context():
                logit = self._target_logit(x, t, check=step_index == 0)
                (grad,) = torch.autograd.grad(logit.sum(), x)
            logits.append(logit.detach())
            del logit                      # free this step's graph before the next forward
            with torch.no_grad():
                norm = grad.flatten(1).norm(dim=1).view(-1, *([1] * (x.ndim - 1)))
                step = self.alpha * grad / torch.where(norm > 0, norm, torch.ones_like(norm))
                x = x.detach() + step
                if self.eps is not None:
                    delta = x - x0
                    dnorm = delta.flatten(1).norm(dim=1).view_as(norm)
                    x = x0 + delta * torch.clamp(self.eps / dnorm.clamp_min(1e-30), max=1.0)
                if self.clip == "every":
                    x = x.clamp(*self.bounds)
        if self.clip == "last":
            x = x.clamp(*self.bounds)
        x = x.detach()
        if final_logits:
            with torch.no_grad():
                logits.append(self._target_logit(x, t, check=False))
        target_logits = torch.stack(logits) if logits else torch.empty(0)
        return AscentResult(perturbed=x, difference=x - x0, target_logits=target_logits)

    def ascend(self, inputs: Tensor, target: TargetLike) -> AscentResult:
        """Run the ascent on a batch; ``target``: one int, or one class index per example."""
        return self._run(inputs, target, final_logits=True)

    def attribute(self, inputs: Tensor, target: TargetLike = None) -> Tensor:  # type: ignore[override]
        """Captum-style: the difference ``x_K - x0`` (shaped like ``inputs``)."""
        if target is None:
            raise ValueError("PullbackAscent needs a target class (int or one per example)")
        return self._run(inputs, target, final_logits=False).difference


class GradientAscent(PullbackAscent):
    """:class:`PullbackAscent` with the vanilla backward pass (the paper's comparison)."""

    def __init__(self, model: Callable[[Tensor], Tensor], steps: int = 5, alpha: float = 20.0,
                 eps: Optional[float] = None, clip: Optional[str] = "every",
                 bounds: Optional[tuple[float, float]] = (-1.0, 1.0)) -> None:
        super().__init__(model, steps=steps, alpha=alpha, eps=eps, clip=clip, bounds=bounds)

    def _context(self):
        return contextlib.nullcontext()
