"""Captum-compatible excitation-pullback attributions and a Quantus ``explain_func`` adapter.

Example
-------
>>> import torch, torchvision
>>> from whiteboxdl.pullbacks import ExcitationPullback
>>> model = torchvision.models.resnet18(num_classes=10).eval()
>>> x = torch.rand(2, 3, 32, 32)
>>> attr = ExcitationPullback(model).attribute(x, target=[1, 7])
>>> attr.shape
torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable, Optional

import numpy as np
import torch
from captum._utils.common import _format_output, _format_tensor_into_tuples, _is_tuple
from captum._utils.gradient import apply_gradient_requirements, undo_gradient_requirements
from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import GradientAttribution
from captum.log import log_usage
from torch import nn

from whiteboxdl.pullbacks.gates import GateFn
from whiteboxdl.pullbacks.mode import DEFAULT_RULES, excitation_pullbacks


def warn_if_training(model: Callable, owner: object) -> None:
    """Warn once per ``owner`` when ``model`` is an ``nn.Module`` in training mode."""
    if isinstance(model, nn.Module) and model.training and not getattr(owner, "_warned", False):
        owner._warned = True  # type: ignore[attr-defined]
        warnings.warn(f"{type(model).__name__} is in training mode; pullbacks assume eval mode "
                      "(BatchNorm statistics, dropout). Call model.eval() first.", UserWarning,
                      stacklevel=3)


class ExcitationPullback(GradientAttribution):
    """Excitation pullback of the target output w.r.t. the inputs (Captum ``attribute`` API).

    The forward pass is the model's own; only the backward uses the soft gates of
    :func:`~whiteboxdl.pullbacks.excitation_pullbacks`. Works with ``captum.attr.NoiseTunnel``
    (SmoothGrad over pullbacks).

    Parameters
    ----------
    forward_func : the model (or any callable returning a tensor per example).
    temperature, gate, maxpool_temperature, maxpool_rule, rules : see ``excitation_pullbacks``.

    Example
    -------
    >>> import torch
    >>> from captum.attr import NoiseTunnel
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> nt = NoiseTunnel(ExcitationPullback(net.eval()))
    >>> nt.attribute(torch.rand(2, 4), target=0, nt_samples=4, stdevs=0.1).shape
    torch.Size([2, 4])
    """

    def __init__(self, forward_func: Callable[..., torch.Tensor], temperature: float = 0.3,
                 gate: str | GateFn = "sigmoid", maxpool_temperature: float = 0.3,
                 maxpool_rule: str = "smoothmax", rules: Iterable[str] = DEFAULT_RULES,
                 **rule_kwargs: float) -> None:
        GradientAttribution.__init__(self, forward_func)
        self._context_kwargs = dict(temperature=temperature, gate=gate,
                                    maxpool_temperature=maxpool_temperature,
                                    maxpool_rule=maxpool_rule, rules=tuple(rules), **rule_kwargs)
        excitation_pullbacks(**self._context_kwargs)     # validate now, not at first use
        self._warned = False

    def context(self):
        """A fresh ``excitation_pullbacks`` context with this explainer's settings."""
        return excitation_pullbacks(**self._context_kwargs)

    @log_usage()  # NoiseTunnel calls ``attribute.__wrapped__``
    def attribute(self, inputs: TensorOrTupleOfTensorsGeneric, target: TargetType = None,
                  additional_forward_args: Optional[Any] = None) -> TensorOrTupleOfTensorsGeneric:
        """Pullback of ``forward_func(inputs)[target]`` (per example) w.r.t. ``inputs``.

        ``target``: an int for all examples, a list / 1-D tensor with one index per example, or
        anything Captum accepts. Returns tensors shaped like ``inputs``.
        """
        warn_if_training(self.forward_func, self)
        is_tuple = _is_tuple(inputs)
        inputs_tuple = _format_tensor_into_tuples(inputs)
        for x in inputs_tuple:
            if x.is_floating_point() and not torch.isfinite(x).all():
                raise ValueError("inputs contain NaN or infinite values")
        mask = apply_gradient_requirements(inputs_tuple, warn=False)
        try:
            with self.context():
                grads = self.gradient_func(self.forward_func, inputs_tuple, target,
                                           additional_forward_args)
        finally:
            undo_gradient_requirements(inputs_tuple, mask)
        return _format_output(is_tuple, tuple(g.detach() for g in grads))


def pullback_explain_func(model: nn.Module, inputs: np.ndarray | torch.Tensor,
                          targets: np.ndarray | torch.Tensor | int | list,
                          **kwargs: Any) -> np.ndarray:
    """Quantus-compatible ``explain_func``: excitation pullbacks as a numpy array.

    ``kwargs``: ``method`` (``"pullback"`` default, or ``"ascent"`` for the PullbackAscent
    difference), ``device``, and the settings of :class:`ExcitationPullback` /
    :class:`~whiteboxdl.pullbacks.ascent.PullbackAscent`; unknown Quantus keys are ignored.

    Example
    -------
    >>> import numpy as np, torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    >>> pullback_explain_func(net, np.ones((2, 1, 2, 2), np.float32), np.array([0, 2])).shape
    (2, 1, 2, 2)
    """
    method = kwargs.pop("method", "pullback")
    device = kwargs.pop("device", None)
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else "cpu"
    x = torch.as_tensor(np.asarray(inputs) if not torch.is_tensor(inputs) else inputs,
                        dtype=torch.float32, device=device)
    t = torch.as_tensor(np.asarray(targets) if not torch.is_tensor(targets) else targets,
                        device=device).long().reshape(-1)
    if t.numel() == 1 and x.shape[0] > 1:
        t = t.expand(x.shape[0])
    if method == "pullback":
        allowed = {"temperature", "gate", "maxpool_temperature", "maxpool_rule", "rules",
                   "silu_temperature", "gelu_temperature", "attention_temperature"}
        explainer = ExcitationPullback(model, **{k: v for k, v in kwargs.items() if k in allowed})
        result = explainer.attribute(x, target=t)
    elif method == "ascent":
        from whiteboxdl.pullbacks.ascent import PullbackAscent

        allowed = {"steps", "alpha", "eps", "clip", "bounds", "temperature", "gate",
                   "maxpool_temperature", "maxpool_rule", "rules"}
        result = PullbackAscent(model, **{k: v for k, v in kwargs.items() if k in allowed}) \
            .attribute(x, target=t)
    else:
        raise ValueError(f"unknown method {method!r}; use 'pullback' or 'ascent'")
    return result.detach().cpu().numpy()
