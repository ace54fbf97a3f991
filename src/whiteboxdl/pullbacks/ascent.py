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
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from captum.attr import Attribution
from torch import Tensor

from whiteboxdl.models.state import eval_mode
from whiteboxdl.pullbacks.checks import (TargetLike, check_inputs, check_logits,
                                         check_target_range, targets_tensor, warn_if_training)
from whiteboxdl.pullbacks.mode import ExcitationPullbacks
from whiteboxdl.pullbacks.settings import PullbackSettings
from whiteboxdl.validation import check_bounds, check_choice, check_number, check_positive

CLIP_MODES = ("every", "last", None)
#: Largest step length accepted: far beyond any image's diameter, small enough to stay finite.
MAX_STEP = 1e6


@dataclass
class AscentResult:
    """Outcome of an ascent: ``perturbed`` = x_K, ``difference`` = x_K - x0 (both like the input),
    ``target_logits`` = (steps + 1, N) logit of each example's target before each step and at
    the end."""

    perturbed: Tensor
    difference: Tensor
    target_logits: Tensor


class PullbackAscent(Attribution):
    """Pixel-space ascent of the target logit along excitation pullbacks.

    Parameters
    ----------
    model : classifier mapping (N, ...) inputs to (N, classes) logits, in eval mode.
    steps : number of steps K (>= 1).
    alpha : L2 length of each step (> 0).
    eps : radius of the L2 ball around x0 that x - x0 is projected onto, or None.
    clip : ``"every"`` step, only the ``"last"``, or ``None`` (never) clamp to ``bounds``.
    bounds : (low, high) input range (the paper's images live in [-1, 1]).
    settings : a :class:`~whiteboxdl.pullbacks.settings.PullbackSettings`; ``**options``: its
        keywords on top (``temperature``, ``maxpool_temperature``, ``silu_temperature``, ``rules``
        … every registered rule's options).

    A model in training mode is run in eval mode for the ascent (one-time warning) and restored.

    Example
    -------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()
    >>> PullbackAscent(net, steps=1, alpha=0.1).attribute(torch.zeros(1, 3), target=0).norm()
    tensor(0.1000)
    """

    def __init__(self, model: Callable[[Tensor], Tensor], steps: int = 5, alpha: float = 20.0,
                 eps: Optional[float] = None, clip: Optional[str] = "every",
                 bounds: Optional[tuple[float, float]] = (-1.0, 1.0),
                 settings: Optional[PullbackSettings] = None, **options: Any) -> None:
        super().__init__(model)
        self.steps = check_number("steps", steps, low=1, integer=True)
        self.alpha = check_number("alpha", alpha, low=0, high=MAX_STEP, low_open=True)
        self.eps = check_positive("eps", eps, allow_none=True)
        self.clip = check_choice("clip", clip, CLIP_MODES)
        if bounds is not None:
            bounds = check_bounds("bounds", bounds)
        elif clip is not None:
            raise ValueError(f"clip={clip!r} needs bounds; pass bounds=(low, high) or clip=None")
        self.bounds = bounds
        self.settings = PullbackSettings.of(settings, **options)
        self._warned = False

    def _context(self):
        return ExcitationPullbacks(self.settings)

    def _target_logit(self, x: Tensor, t: Tensor, check: bool = True) -> Tensor:
        """The targets' logits; ``check`` validates the output shape and the targets (this
        waits for the device, so the ascent does it at its first step only)."""
        out = self.forward_func(x)
        if check:
            check_target_range(t, check_logits(out, x.shape[0]).shape[1])
        return out.gather(1, t[:, None])[:, 0]

    def _run(self, inputs: Tensor, target: TargetLike | None, final_logits: bool) -> AscentResult:
        warn_if_training(self.forward_func, self)
        check_inputs(inputs, bounds=self.bounds)
        t = targets_tensor(target, inputs.shape[0], inputs.device)
        with eval_mode(self.forward_func):
            return self._ascend(inputs, t, final_logits)

    def _ascend(self, inputs: Tensor, t: Tensor, final_logits: bool) -> AscentResult:
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
                if self.clip == "every" and self.bounds is not None:
                    x = x.clamp(*self.bounds)
        if self.clip == "last" and self.bounds is not None:
            x = x.clamp(*self.bounds)
        x = x.detach()
        if not torch.isfinite(x).all():
            raise ValueError(f"the ascent left the finite numbers (alpha={self.alpha:g}, "
                             f"eps={self.eps}, clip={self.clip!r}); use a smaller alpha or clip")
        if final_logits:
            with torch.no_grad():
                logits.append(self._target_logit(x, t, check=False))
        target_logits = torch.stack(logits) if logits else torch.empty(0)
        return AscentResult(perturbed=x, difference=x - x0, target_logits=target_logits)

    def ascend(self, inputs: Tensor, target: TargetLike) -> AscentResult:
        """Run the ascent on a batch; ``target``: one int, or one class index per example."""
        return self._run(inputs, target, final_logits=True)

    def attribute(self, inputs: Tensor,  # type: ignore[override]
                  target: TargetLike | None = None) -> Tensor:
        """Captum-style: the difference ``x_K - x0`` (shaped like ``inputs``)."""
        return self._run(inputs, target, final_logits=False).difference


class GradientAscent(PullbackAscent):
    """:class:`PullbackAscent` with the vanilla backward pass (the paper's comparison)."""

    def __init__(self, model: Callable[[Tensor], Tensor], steps: int = 5, alpha: float = 20.0,
                 eps: Optional[float] = None, clip: Optional[str] = "every",
                 bounds: Optional[tuple[float, float]] = (-1.0, 1.0)) -> None:
        super().__init__(model, steps=steps, alpha=alpha, eps=eps, clip=clip, bounds=bounds)

    def _context(self):
        return contextlib.nullcontext()
