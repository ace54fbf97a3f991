"""The excitation-pullback context: a TorchFunctionMode that swaps backward rules, not modules.

Inside ``with excitation_pullbacks(...)`` every op of an active rule (see
:mod:`whiteboxdl.pullbacks.registry`; by default every ReLU — ``F.relu``, ``torch.relu``,
``Tensor.relu``, in-place forms, ``nn.ReLU`` —, every ReLU6 / hardtanh and every max-pool in all
its forms) runs through
the rule's handler: the forward is the original op (bit-identical), the backward is the soft rule.
A known nonlinearity without an active rule (``F.leaky_relu``, ``F.silu`` with the default rules …)
warns once per context, naming the op and the rule that would handle it.

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

import warnings
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from whiteboxdl.pullbacks import recipes
from whiteboxdl.pullbacks import rules as _builtin_rules  # noqa: F401  (registers the rules)
from whiteboxdl.pullbacks.gates import GateFn, SoftGate, get_gate, recipe_inputs
from whiteboxdl.pullbacks.recipes import attach, operand, recipe_of
from whiteboxdl.pullbacks.registry import (default_rule_names, get_rule, op_name, rule_names,
                                           unruled_ops)
from whiteboxdl.pullbacks.rules import first_arg, wants_grad
from whiteboxdl.pullbacks.settings import PullbackSettings

#: Rules applied by default (the paper's: ReLU networks with max-pooling).
DEFAULT_RULES = default_rule_names()
#: Every rule registered when the package was imported (``registry.rule_names()`` is live).
ALL_RULES = rule_names()


class UnhandledOpWarning(UserWarning):
    """A known nonlinearity ran inside the context without an active rule: its backward was the
    vanilla one. Silence with ``unhandled="ignore"`` or a warnings filter on this category."""


class ExcitationPullbacks(TorchFunctionMode):
    """TorchFunctionMode applying the soft backward rules; use :func:`excitation_pullbacks`.

    Rule handlers get the mode as first argument: ``mode.settings`` (the
    :class:`~whiteboxdl.pullbacks.settings.PullbackSettings`), ``mode.gate`` (the resolved gate
    function) and :meth:`activation` (the soft-gated element-wise activation helper).
    """

    def __init__(self, settings: Optional[PullbackSettings] = None):
        super().__init__()
        self.settings = settings if settings is not None else PullbackSettings()
        self.gate: GateFn = get_gate(self.settings.gate)
        self.recompute = self.settings.recompute
        active = [get_rule(name) for name in self.settings.rules]
        handlers: dict[object, Callable] = {}
        if self.recompute and any(rule.recompute for rule in active):
            handlers[F.batch_norm] = _batch_norm
            handlers.update({f: _add for f in (torch.add, torch.Tensor.add, torch.Tensor.add_)})
        for rule in active:
            handlers.update({op: rule.handler for op in rule.ops + rule.companion_ops})
        if self.settings.unhandled != "ignore":
            for op, advice in unruled_ops(active).items():
                handlers.setdefault(op, _Unhandled(op_name(op), advice))
        self._handlers = handlers
        self._reported: set[str] = set()

    def __repr__(self) -> str:
        return f"excitation_pullbacks({self.settings!r})"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        handler = self._handlers.get(func)
        if handler is None:
            return func(*args, **kwargs)
        return handler(self, func, args, kwargs)

    def activation(self, func: Callable, args: tuple, kwargs: dict, inplace: bool, gate: GateFn,
                   temperature: float) -> Any:
        """Run the element-wise activation ``func(*args, **kwargs)`` with the backward
        ``grad * gate(z, temperature)``, ``z`` its input (recomputed in backward when it came
        from an eval-mode BatchNorm or a residual sum of them)."""
        z, call = first_arg(args, kwargs)
        if not wants_grad(z):
            return func(*args, **kwargs)
        recompute = recipe_of(z) if self.recompute else None
        inputs = recipe_inputs(recompute.tensors) \
            if recompute is not None and recompute.sums_to(z) else ()
        return SoftGate.apply(z, lambda t: call(func, t), gate, temperature, inplace, recompute,
                              *inputs)

    def report_unhandled(self, name: str, advice: str) -> None:
        """Warn (once per context) or raise, per ``settings.unhandled``, that ``name`` ran with
        its vanilla backward."""
        message = (f"{name} ran inside excitation_pullbacks() without a backward rule, so its "
                   f"gradient is the vanilla one: {advice}. Silence with unhandled='ignore' "
                   "(or a warnings filter on UnhandledOpWarning)")
        if self.settings.unhandled == "error":
            raise RuntimeError(message)
        if name not in self._reported:
            self._reported.add(name)
            warnings.warn(message, UnhandledOpWarning, stacklevel=2)


class _Unhandled:
    """Handler of a known nonlinearity no active rule covers: run it, and report it when its
    gradient matters (grad mode on and an input that requires grad)."""

    def __init__(self, name: str, advice: str):
        self.name, self.advice = name, advice

    def __call__(self, mode: ExcitationPullbacks, func, args, kwargs):
        if wants_grad(*args, *kwargs.values()):
            mode.report_unhandled(self.name, self.advice)
        return func(*args, **kwargs)


# -- recipes: pre-activations recomputed in backward instead of stored (see recipes.py)
def _batch_norm(mode, func, args, kwargs):
    out = func(*args, **kwargs)
    if isinstance(out, Tensor) and wants_grad(out):
        recipe = recipes.batch_norm(func, args, kwargs, out)
        if recipe is not None:
            attach(out, recipe)
    return out


def _add(mode, func, args, kwargs):
    if len(args) != 2 or kwargs or not all(isinstance(a, Tensor) for a in args) \
            or not (recipe_of(args[0]) or recipe_of(args[1])):
        return func(*args, **kwargs)
    inplace = func is torch.Tensor.add_
    if inplace and recipe_of(args[0]) is None:
        return func(*args, **kwargs)
    left, right = operand(args[0]), operand(args[1])
    out = func(*args, **kwargs)
    if wants_grad(out):
        # a recomputed left operand is a fresh temporary: add into it (one allocation less)
        into_left = inplace or (recipe_of(args[0]) is not None
                                and out.shape == args[0].shape and out.dtype == args[0].dtype)
        attach(out, recipes.add(left, right, into_left))
    return out


def excitation_pullbacks(settings: Optional[PullbackSettings] = None,
                         **options: Any) -> ExcitationPullbacks:
    """Context manager: inside it, backward passes compute excitation pullbacks.

    Parameters
    ----------
    settings : a :class:`~whiteboxdl.pullbacks.settings.PullbackSettings` (default: the paper's).
    **options : any of its keywords, applied on top: ``temperature`` (ReLU gate, 0.3),
        ``gate`` (``"sigmoid"`` or ``"normal"``), ``maxpool_temperature``, ``maxpool_rule``
        (``"smoothmax"`` or ``"detached"``), ``rules`` (names from the registry, ``"all"``;
        default ``("relu", "maxpool", "relu6")``), ``relu6_temperature``, ``relu6_scale``,
        ``silu_temperature``, ``gelu_temperature``, ``attention_temperature``, ``recompute``,
        ``unhandled`` (``"warn"``, ``"ignore"``,
        ``"error"``), and every option of a rule registered later.

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
    return ExcitationPullbacks(PullbackSettings.of(settings, **options))
