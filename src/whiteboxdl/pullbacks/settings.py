"""One frozen settings object for every pullback entry point, validated once.

:class:`PullbackSettings` holds which rules are active, the gate, the recompute switch, what to do
with nonlinearities that have no active rule, and every option of every registered rule (their
temperatures, the max-pool variant). ``excitation_pullbacks``, ``ExcitationPullback``,
``PullbackAscent``, the explainer registry, the app and the CLI all take one (or its keywords),
so every rule's temperature is reachable from every entry point; the keywords come from the rule
registry, so a newly registered rule's temperature is too.

Example
-------
>>> from whiteboxdl.pullbacks.settings import PullbackSettings
>>> s = PullbackSettings(temperature=0.5)
>>> s.temperature, s.maxpool_temperature, s.rules
(0.5, 0.3, ('relu', 'maxpool', 'relu6'))
>>> s.replace(rules="all").rules[-1]
'attention'
>>> PullbackSettings(temprature=0.5)
Traceback (most recent call last):
ValueError: unknown pullback setting 'temprature'; did you mean temperature? ...
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping, Optional

from whiteboxdl.pullbacks import registry
from whiteboxdl.pullbacks.gates import GATES, GateFn, get_gate

#: What to do when a known nonlinearity runs without an active rule.
UNHANDLED_MODES = ("warn", "ignore", "error")


def _check_rules(rules: Any) -> tuple[str, ...]:
    if rules is None:
        return registry.default_rule_names()
    if rules == "all":
        return registry.rule_names()
    if isinstance(rules, str):
        rules = (rules,)
    try:
        names = tuple(rules)
    except TypeError:
        raise ValueError(f"rules must be rule names, 'all' or None (the defaults "
                         f"{list(registry.default_rule_names())}), got {rules!r}") from None
    for name in names:
        registry.get_rule(name)
    if len(set(names)) != len(names):
        raise ValueError(f"rules contain duplicates: {list(names)}")
    return names


class PullbackSettings:
    """Frozen, validated options of the pullback context.

    Parameters
    ----------
    rules : names of the active rules, ``"all"``, or ``None`` for the defaults
        (``("relu", "maxpool", "relu6")``: ReLU / ReLU6 networks with max-pooling).
    gate : ``"sigmoid"`` (``sigmoid(z/T)``, the paper) or ``"normal"`` (``Phi(z/T)``, the later
        revision), or a callable ``gate(z, T)``; used by the ReLU-family rules.
    recompute : recompute pre-activations made by eval-mode BatchNorm (and residual sums of them)
        in backward instead of storing them (bit-identical, saves memory).
    unhandled : a known nonlinearity that runs without an active rule ``"warn"``\\ s once per
        context (default), is ``"ignore"``\\ d or raises (``"error"``).
    **options : every registered rule's options, e.g. ``temperature`` (ReLU, 0.3),
        ``relu6_temperature``, ``relu6_scale`` (``"fixed"`` or ``"channel"``),
        ``maxpool_temperature`` (0.3), ``maxpool_rule`` (``"smoothmax"`` or ``"detached"``),
        ``silu_temperature`` (1.6), ``gelu_temperature`` (1.0), ``attention_temperature`` (1.0);
        :meth:`keywords` lists them all.
    """

    __slots__ = ("_values",)

    def __init__(self, rules: Optional[Iterable[str] | str] = None,
                 gate: str | GateFn = "sigmoid", recompute: bool = True,
                 unhandled: str = "warn", **options: Any) -> None:
        known = registry.options()
        unknown = [k for k in options if k not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], self.keywords(), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ValueError(f"unknown pullback setting {unknown[0]!r}; {hint}"
                             f"settings: {', '.join(self.keywords())}")
        get_gate(gate)
        if not isinstance(recompute, bool):
            raise ValueError(f"recompute must be True or False, got {recompute!r}")
        if unhandled not in UNHANDLED_MODES:
            raise ValueError(f"unhandled must be one of {list(UNHANDLED_MODES)}, got "
                             f"{unhandled!r}")
        values: dict[str, Any] = {"rules": _check_rules(rules), "gate": gate,
                                  "recompute": recompute, "unhandled": unhandled}
        for name, option in known.items():
            values[name] = option.check(name, options[name]) if name in options \
                else option.default
        object.__setattr__(self, "_values", values)

    # -- construction helpers
    @classmethod
    def keywords(cls) -> tuple[str, ...]:
        """Every keyword the settings accept (global ones, then each rule's options)."""
        return (*registry.GLOBAL_OPTIONS, *registry.options())

    @classmethod
    def of(cls, settings: Optional["PullbackSettings"] = None, **changes: Any
           ) -> "PullbackSettings":
        """``settings`` with ``changes`` applied, or new settings from ``changes``.

        Example
        -------
        >>> PullbackSettings.of(PullbackSettings(temperature=2.0), rules="all").temperature
        2.0
        """
        if settings is None:
            return cls(**changes)
        if not isinstance(settings, PullbackSettings):
            raise TypeError(f"settings must be a PullbackSettings, got {type(settings).__name__}")
        return settings.replace(**changes) if changes else settings

    @classmethod
    def split(cls, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split mixed keyword arguments into ``(settings keywords, the rest)``.

        Example
        -------
        >>> PullbackSettings.split({"temperature": 1.0, "steps": 5})
        ({'temperature': 1.0}, {'steps': 5})
        """
        names = set(cls.keywords())
        return ({k: v for k, v in kwargs.items() if k in names},
                {k: v for k, v in kwargs.items() if k not in names})

    def replace(self, **changes: Any) -> "PullbackSettings":
        """A copy with ``changes`` applied (validated like the constructor)."""
        return PullbackSettings(**{**self._values, **changes})

    # -- access
    def __getattr__(self, name: str) -> Any:
        try:
            values = object.__getattribute__(self, "_values")
        except AttributeError:
            raise AttributeError(name) from None
        if name in values:
            return values[name]
        option = registry.options().get(name)     # a rule registered after these settings
        if option is not None:
            return option.default
        raise AttributeError(f"PullbackSettings has no setting {name!r}; settings: "
                             f"{', '.join(self.keywords())}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PullbackSettings is frozen; use .replace(...)")

    def as_dict(self) -> dict[str, Any]:
        """Plain values (JSON-ready: the gate by name, rules as a list)."""
        out = dict(self._values)
        out["rules"] = list(out["rules"])
        gate = out["gate"]
        if callable(gate):
            out["gate"] = next((k for k, v in GATES.items() if v is gate),
                               getattr(gate, "__name__", repr(gate)))
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PullbackSettings) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, v if not isinstance(v, list) else tuple(v))
                                 for k, v in self._values.items())))

    def __repr__(self) -> str:
        defaults = PullbackSettings()._values
        changed = {k: v for k, v in self._values.items() if defaults.get(k) != v}
        return "PullbackSettings(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

