"""The registry of backward rules: one record per rule, everything else derives from it.

A :class:`Rule` names the ops it intercepts (every spelling: ``F.relu``, ``torch.relu``,
``Tensor.relu``, in-place forms …), the handler that runs them inside
:func:`~whiteboxdl.pullbacks.excitation_pullbacks`, its options (a temperature and its default),
whether its inputs may come from the BatchNorm recompute route, and a small example with an
analytic reference that the test suite runs for every registered rule. The context's dispatch,
:data:`~whiteboxdl.pullbacks.ALL_RULES`, the settings' keywords, the CLI's and the app's options
and the stability tracker's op table are all read from here. Registering a rule from outside the
package is one call to :func:`register_rule` (see :func:`elementwise_rule` for the usual case).

Ops that are known nonlinearities but have no active rule warn once per context (a vanilla
gradient must never pass for a pullback); :data:`KNOWN_NONLINEARITIES` lists those without any rule.

Example
-------
>>> from whiteboxdl.pullbacks.registry import get_rule, rule_names
>>> "relu" in rule_names() and get_rule("relu").default
True
>>> [o.name for o in get_rule("maxpool").options]
['maxpool_temperature', 'maxpool_rule']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from whiteboxdl.validation import check_number

#: ``handler(mode, func, args, kwargs)``: runs ``func(*args, **kwargs)`` with the soft backward.
Handler = Callable[[Any, Callable, tuple, dict], Any]

#: Temperatures must lie in this range: below it ``1/T`` overflows float32 arithmetic (the gate
#: is then the vanilla step anyway), above it every gate is constant to float precision.
TEMPERATURE_RANGE = (1e-12, 1e12)


def check_temperature(value: object, name: str = "temperature") -> float:
    """``value`` as a float if it is a finite number in :data:`TEMPERATURE_RANGE`, else
    ``ValueError`` naming ``name``.

    Example
    -------
    >>> check_temperature(0.3)
    0.3
    """
    low, high = TEMPERATURE_RANGE
    try:
        return check_number(name, value, low=low, high=high)
    except ValueError:
        raise ValueError(f"{name} must be a finite number > 0 (in [{low:g}, {high:g}]), "
                         f"got {value!r}") from None


@dataclass(frozen=True)
class Option:
    """One setting of a rule: its keyword, default and validator ``check(name, value) -> value``."""

    name: str
    default: Any
    check: Callable[[str, Any], Any]
    help: str = ""
    choices: Optional[tuple] = None

    @property
    def is_temperature(self) -> bool:
        return self.name.endswith("temperature")


def temperature_option(name: str, default: float, help: str = "") -> Option:
    """A temperature setting (validated by :func:`check_temperature`)."""
    return Option(name, check_temperature(default, name), lambda n, v: check_temperature(v, n),
                  help or f"temperature of the {name.removesuffix('_temperature') or 'ReLU'} rule")


def choice_option(name: str, default: str, choices: Sequence[str], help: str = "") -> Option:
    """A setting with a fixed set of string values."""
    options = tuple(choices)

    def check(n: str, v: Any) -> str:
        if v not in options:
            raise ValueError(f"unknown {n} {v!r}; choose one of {list(options)}")
        return v

    return Option(name, check(name, default), check, help, options)


@dataclass(frozen=True)
class RuleExample:
    """A small call of a rule's op that the parametrized test suite runs (in float64).

    ``inputs(generator)`` makes the inputs (those requiring grad first); ``call(*inputs)`` applies
    the op in its canonical spelling; ``reference(inputs, grad_out, temperature)`` gives the
    expected input gradients under the rule (an independent, analytic formula); ``hot_limit`` and
    ``cold_limit`` the expected gradients as the temperature grows without bound or goes to 0;
    ``cold_is_vanilla``: without a ``cold_limit``, a temperature near 0 gives the vanilla gradient
    (true for ReLU and the max-pool; SiLU and GELU gates turn into ReLU's step instead).
    """

    inputs: Callable[[torch.Generator], tuple[Tensor, ...]]
    call: Callable[..., Tensor]
    reference: Optional[Callable[[tuple, Tensor, float], tuple]] = None
    hot_limit: Optional[Callable[[tuple, Tensor], tuple]] = None
    cold_is_vanilla: bool = True
    cold_limit: Optional[Callable[[tuple, Tensor], tuple]] = None


@dataclass(frozen=True)
class Rule:
    """A backward rule of the pullback context.

    Parameters
    ----------
    name : the name users put in ``rules=`` (``"relu"``).
    ops : every callable the rule intercepts (all spellings of the op).
    handler : ``handler(mode, func, args, kwargs)``; see
        :class:`~whiteboxdl.pullbacks.mode.ExcitationPullbacks` for the helpers it can use
        (``mode.activation``, ``mode.settings``).
    options : the rule's settings (a temperature, a variant), keywords of
        :class:`~whiteboxdl.pullbacks.settings.PullbackSettings`.
    recompute : its input is usually an eval-mode BatchNorm output or a residual sum of them:
        the context then recomputes those in backward instead of storing them.
    default : active when ``rules`` is not given.
    example : a small call with an analytic reference, run by the test suite.
    companion_ops : ops the handler must also see while the rule is active (the attention rule
        tracks ``softmax`` outputs that are then multiplied with values), but which are no sign
        of a missing rule when it is not: they never warn.
    """

    name: str
    ops: tuple[Callable, ...]
    handler: Handler
    options: tuple[Option, ...] = ()
    recompute: bool = False
    default: bool = False
    description: str = ""
    example: Optional[RuleExample] = None
    companion_ops: tuple[Callable, ...] = ()

    @property
    def temperature(self) -> Optional[Option]:
        """The rule's temperature option, if it has one."""
        return next((o for o in self.options if o.is_temperature), None)


_RULES: dict[str, Rule] = {}
#: Option keywords every context has, whatever the rules (see ``PullbackSettings``).
GLOBAL_OPTIONS = ("rules", "gate", "recompute", "unhandled")


def register_rule(rule: Rule, *, replace: bool = False) -> Rule:
    """Add ``rule`` to the registry (``replace=True`` to redefine one of the same name).

    Raises ``ValueError`` if the name, an op or an option keyword is already taken by another rule.

    Example
    -------
    >>> import torch
    >>> from whiteboxdl.pullbacks.registry import elementwise_rule, register_rule, unregister_rule
    >>> rule = register_rule(elementwise_rule(
    ...     "toy_tanh", ops=(torch.tanh,), temperature="toy_temperature", default_temperature=1.0,
    ...     gate=lambda z, T: 1 - torch.tanh(z / T) ** 2))
    >>> unregister_rule("toy_tanh").name
    'toy_tanh'
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"register_rule takes a Rule, got {type(rule).__name__}")
    if not rule.name or not rule.name.isidentifier():
        raise ValueError(f"rule names must be identifiers, got {rule.name!r}")
    if rule.name == "all":
        raise ValueError("'all' is reserved (rules='all' means every registered rule)")
    if rule.name in _RULES and not replace:
        raise ValueError(f"a rule named {rule.name!r} is already registered; pass replace=True")
    others = [r for r in _RULES.values() if r.name != rule.name]
    for other in others:
        shared = set(map(id, other.ops + other.companion_ops)) & \
            set(map(id, rule.ops + rule.companion_ops))
        if shared:
            op = next(o for o in rule.ops + rule.companion_ops if id(o) in shared)
            raise ValueError(f"rule {other.name!r} already intercepts {op_name(op)}")
        clash = {o.name for o in other.options} & {o.name for o in rule.options}
        if clash:
            raise ValueError(f"option {sorted(clash)[0]!r} already belongs to rule {other.name!r}")
    reserved = set(GLOBAL_OPTIONS) & {o.name for o in rule.options}
    if reserved:
        raise ValueError(f"option names {sorted(reserved)} are reserved for the context")
    _RULES[rule.name] = rule
    return rule


def unregister_rule(name: str) -> Rule:
    """Remove a rule (e.g. a toy rule a test registered); returns it."""
    return _RULES.pop(get_rule(name).name)


def get_rule(name: str) -> Rule:
    """The registered rule ``name``; ``ValueError`` listing the registered ones otherwise."""
    try:
        return _RULES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown rule {name!r}; registered rules: {list(rule_names())} "
                         "(or rules='all')") from None


def rules() -> tuple[Rule, ...]:
    """Every registered rule, in registration order."""
    return tuple(_RULES.values())


def rule_names() -> tuple[str, ...]:
    """Names of every registered rule (``ALL_RULES`` is this at import time)."""
    return tuple(_RULES)


def default_rule_names() -> tuple[str, ...]:
    """Names of the rules active when ``rules`` is not given."""
    return tuple(r.name for r in _RULES.values() if r.default)


def options() -> dict[str, Option]:
    """Every rule option keyword -> its :class:`Option`."""
    return {o.name: o for r in _RULES.values() for o in r.options}


def ops_of(*names: str) -> frozenset:
    """The ops the named rules intercept (e.g. the stability tracker's ReLU table)."""
    return frozenset(op for n in names for op in get_rule(n).ops)


def op_name(func: Callable) -> str:
    """A readable name of an op: ``F.relu6``, ``torch.relu_``, ``Tensor.relu``."""
    module = getattr(func, "__module__", None) or ""
    name = getattr(func, "__name__", None) or repr(func)
    qual = getattr(func, "__qualname__", name)
    if qual.startswith(("TensorBase.", "Tensor.")):
        return "Tensor." + name
    prefix = {"torch.nn.functional": "F", "torch._C._nn": "torch._C._nn",
              "torch": "torch"}.get(module, module or "torch")
    for candidate, value in (("F", F), ("torch", torch)):
        if getattr(value, name, None) is func:
            prefix = candidate
            break
    return f"{prefix}.{name}"


# ----------------------------------------------------------------------------- known ops
def _spellings(*names: str, namespaces: Iterable = (F, torch, torch.Tensor, torch._C._nn)) -> tuple:
    found: list[Callable] = []
    for ns in namespaces:
        for n in names:
            op = getattr(ns, n, None)
            if callable(op) and all(op is not f for f in found):
                found.append(op)
    return tuple(found)


#: Nonlinearities for which no rule exists: calling one inside the context warns (the gradient
#: through it is the vanilla one). A rule registered for one of these ops takes it over.
KNOWN_NONLINEARITIES: dict[str, tuple] = {
    "relu6 / hardtanh": _spellings("relu6", "relu6_", "hardtanh", "hardtanh_"),
    "leaky_relu": _spellings("leaky_relu", "leaky_relu_"),
    "prelu / rrelu": _spellings("prelu", "rrelu", "rrelu_"),
    "elu / selu / celu": _spellings("elu", "elu_", "selu", "selu_", "celu", "celu_"),
    "hardswish / hardsigmoid": _spellings("hardswish", "hardsigmoid"),
    "mish / softplus": _spellings("mish", "softplus"),
    "threshold": _spellings("threshold", "threshold_"),
    "glu / logsigmoid": _spellings("glu", "logsigmoid"),
    "adaptive / fractional max-pool": _spellings(
        "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
        "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
        "adaptive_max_pool3d_with_indices", "fractional_max_pool2d", "fractional_max_pool3d"),
}


def unruled_ops(active: Iterable[Rule]) -> dict[Callable, str]:
    """Op -> advice for every known nonlinearity that no *active* rule handles: ops of registered
    rules that are not active ("add it to rules=") and :data:`KNOWN_NONLINEARITIES` no rule
    claims ("no rule exists yet")."""
    active = list(active)
    claimed = {id(op) for r in _RULES.values() for op in r.ops}
    active_ops = {id(op) for r in active for op in r.ops}
    advice: dict[Callable, str] = {}
    for rule in _RULES.values():
        if rule in active:
            continue
        for op in rule.ops:
            if id(op) not in active_ops:
                advice[op] = (f"the {rule.name!r} rule handles it: add it to rules= "
                              "(or rules='all')")
    for family, ops in KNOWN_NONLINEARITIES.items():
        for op in ops:
            if id(op) not in claimed:
                advice[op] = (f"no pullback rule exists for {family} yet (register one with "
                              "whiteboxdl.pullbacks.register_rule)")
    return advice


# ----------------------------------------------------------------------------- helpers
@dataclass(frozen=True)
class _ElementwiseHandler:
    """Handler of :func:`elementwise_rule`: ``grad_in = grad_out * gate(z, T)``."""

    gate: Callable[[Tensor, float], Tensor]
    temperature: str
    inplace_ops: tuple = field(default=())
    inplace_arg: Optional[int] = None

    def __call__(self, mode, func, args, kwargs):
        inplace = any(func is op for op in self.inplace_ops) or is_inplace_call(
            args, kwargs, self.inplace_arg)
        return mode.activation(func, args, kwargs, inplace, self.gate,
                               getattr(mode.settings, self.temperature))


def is_inplace_call(args: tuple, kwargs: dict, position: Optional[int]) -> bool:
    """Whether a call asked for ``inplace=True`` (by keyword, or positionally at ``position``)."""
    if "inplace" in kwargs:
        return bool(kwargs["inplace"])
    return position is not None and len(args) > position and bool(args[position])


def elementwise_rule(name: str, ops: Sequence[Callable], temperature: str,
                     default_temperature: float, gate: Callable[[Tensor, float], Tensor], *,
                     inplace_ops: Sequence[Callable] = (), inplace_arg: Optional[int] = None,
                     recompute: bool = True,
                     default: bool = False, description: str = "",
                     example: Optional[RuleExample] = None) -> Rule:
    """A rule for an element-wise activation: forward unchanged, ``grad_in = grad_out *
    gate(z, T)`` with ``z`` the activation's input (saved, or recomputed from BatchNorm).

    ``inplace_ops`` are the spellings that always modify their input; ``inplace_arg`` is the
    position of an ``inplace`` flag (the keyword is recognised on its own). Example: see
    :func:`register_rule`.
    """
    handler = _ElementwiseHandler(gate, temperature, tuple(inplace_ops), inplace_arg)
    return Rule(name, tuple(ops), handler,
                (temperature_option(temperature, default_temperature),), recompute, default,
                description, example)

