"""Captum-compatible excitation-pullback attributions.

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

import functools
from typing import Any, Callable, Optional, Union

import torch
from captum.attr import GradientAttribution
from torch import Tensor

from whiteboxdl.models.state import eval_mode
from whiteboxdl.pullbacks.checks import (TargetLike, check_inputs, check_logits,
                                         check_target_range, targets_tensor, warn_if_training)
from whiteboxdl.pullbacks.mode import ExcitationPullbacks
from whiteboxdl.pullbacks.settings import PullbackSettings

Inputs = Union[Tensor, tuple[Tensor, ...]]


def unlogged(method: Callable) -> Callable:
    """Give ``method`` a ``__wrapped__`` (Captum's NoiseTunnel calls ``attribute.__wrapped__``
    to skip usage logging); the call itself is unchanged."""
    @functools.wraps(method)
    def attribute(*args, **kwargs):
        return method(*args, **kwargs)
    return attribute


class ExcitationPullback(GradientAttribution):
    """Excitation pullback of the target output w.r.t. the inputs (Captum ``attribute`` API).

    The forward pass is the model's own; only the backward uses the soft rules of
    :func:`~whiteboxdl.pullbacks.excitation_pullbacks`. Works with ``captum.attr.NoiseTunnel``
    (SmoothGrad over pullbacks). A model in training mode is run in eval mode for each call (with
    a one-time warning) and restored: attribution never changes the model.

    Parameters
    ----------
    forward_func : the model (or any callable returning ``(N, classes)`` logits).
    settings : a :class:`~whiteboxdl.pullbacks.settings.PullbackSettings`.
    **options : its keywords on top (``temperature``, ``maxpool_temperature``, ``rules``,
        ``silu_temperature`` … every registered rule's options).

    Example
    -------
    >>> import torch
    >>> from captum.attr import NoiseTunnel
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> nt = NoiseTunnel(ExcitationPullback(net.eval()))
    >>> nt.attribute(torch.rand(2, 4), target=0, nt_samples=4, stdevs=0.1).shape
    torch.Size([2, 4])
    """

    def __init__(self, forward_func: Callable[..., Tensor],
                 settings: Optional[PullbackSettings] = None, **options: Any) -> None:
        GradientAttribution.__init__(self, forward_func)
        self.settings = PullbackSettings.of(settings, **options)
        self._warned = False

    def context(self) -> ExcitationPullbacks:
        """A fresh pullback context with this explainer's settings."""
        return ExcitationPullbacks(self.settings)

    @unlogged
    def attribute(self, inputs: Inputs, target: Optional[TargetLike] = None,
                  additional_forward_args: Optional[Any] = None) -> Inputs:
        """Pullback of ``forward_func(inputs)[i, target[i]]`` w.r.t. ``inputs``.

        ``target``: one int for all examples, or one class index per example (list, 1-D integer
        tensor or array). ``inputs``: a tensor ``(N, ...)`` or a tuple of them; extra model
        arguments go in ``additional_forward_args``. Returns tensors shaped like ``inputs``.
        """
        warn_if_training(self.forward_func, self)
        is_tuple = isinstance(inputs, tuple)
        inputs_tuple: tuple[Tensor, ...] = inputs if isinstance(inputs, tuple) else (inputs,)
        if not inputs_tuple:
            raise ValueError("inputs is an empty tuple")
        for i, x in enumerate(inputs_tuple):
            check_inputs(x, f"inputs[{i}]" if is_tuple else "inputs")
        n = inputs_tuple[0].shape[0]
        t = targets_tensor(target, n, inputs_tuple[0].device)
        extra = () if additional_forward_args is None else (
            additional_forward_args if isinstance(additional_forward_args, tuple)
            else (additional_forward_args,))
        leaves = tuple(x.detach().requires_grad_() for x in inputs_tuple)
        with eval_mode(self.forward_func), torch.enable_grad(), self.context():
            out = check_logits(self.forward_func(*leaves, *extra), n)
            check_target_range(t, out.shape[1])
            grads = torch.autograd.grad(out.gather(1, t[:, None]).sum(), leaves)
        return grads if is_tuple else grads[0]
