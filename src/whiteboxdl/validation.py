"""The package's one set of argument checks: numbers, choices and class indices.

Every public entry point validates its arguments with these helpers, so that a bad value always
gives a ``ValueError`` (or ``TypeError`` for a value of the wrong kind) that names the argument,
the value and what would be accepted, never an ``AssertionError`` or an error deep inside torch.

Example
-------
>>> from whiteboxdl.validation import check_number, check_choice
>>> check_number("alpha", 20, low=0, low_open=True)
20.0
>>> check_number("steps", 5, low=1, integer=True)
5
>>> check_choice("clip", "every", ("every", "last", None))
'every'
>>> check_number("temperature", 0, low=0, low_open=True)
Traceback (most recent call last):
ValueError: temperature must be a finite number > 0, got 0
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Iterable, Optional, Sequence, TypeVar

T = TypeVar("T")


def _bounds_text(low: Optional[float], high: Optional[float], low_open: bool,
                 high_open: bool) -> str:
    if low is not None and high is not None:
        if not low_open and not high_open:
            return f" in [{low:g}, {high:g}]"
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def check_number(name: str, value: Any, low: Optional[float] = None,
                 high: Optional[float] = None, *, integer: bool = False,
                 low_open: bool = False, high_open: bool = False, allow_none: bool = False,
                 parse: bool = False) -> Any:
    """``value`` as a float (``int`` if ``integer``) within the bounds, else ``ValueError``.

    Booleans are refused (``True`` is not a step count); ``parse=True`` also accepts numeric
    strings (values typed into a UI). ``allow_none`` lets ``None`` through unchanged.

    Example
    -------
    >>> check_number("eps", None, low=0, allow_none=True) is None
    True
    >>> check_number("steps", "10", low=1, integer=True, parse=True)
    10
    """
    kind = "a whole number" if integer else "a finite number"
    wanted = kind + _bounds_text(low, high, low_open, high_open) + (" or None" if allow_none
                                                                    else "")
    if value is None and allow_none:
        return None
    number: Optional[float] = None
    if isinstance(value, Real) and not isinstance(value, bool):
        number = float(value)
    elif parse and isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    elif hasattr(value, "item") and getattr(value, "ndim", None) == 0 \
            and not isinstance(value, bool):                   # numpy / torch scalars
        item = value.item()
        if isinstance(item, Real) and not isinstance(item, bool):
            number = float(item)
    if number is None or not math.isfinite(number):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    if integer and number != int(number):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(number) if integer else number


def check_positive(name: str, value: Any, *, allow_none: bool = False) -> Optional[float]:
    """A finite number > 0 (``None`` passes with ``allow_none``)."""
    return check_number(name, value, low=0, low_open=True, allow_none=allow_none)


def check_choice(name: str, value: T, choices: Iterable[T]) -> T:
    """``value`` if it is one of ``choices`` (compared with ``==``), else ``ValueError``."""
    options = list(choices)
    try:
        ok = value in options
    except TypeError:                                         # unhashable / odd comparisons
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_class_index(name: str, value: Any, num_classes: int) -> int:
    """One class index in ``0..num_classes-1``; negative indices are refused (no wrap-around)."""
    if isinstance(value, bool) or not (isinstance(value, Integral) or (
            hasattr(value, "item") and getattr(value, "ndim", None) == 0
            and isinstance(value.item(), Integral) and not isinstance(value.item(), bool))):
        raise TypeError(f"{name} must be an integer class index, got {value!r} "
                        f"({type(value).__name__})")
    index = int(value)
    if not 0 <= index < num_classes:
        raise ValueError(f"{name} {index} is out of range: the model has {num_classes} classes "
                         f"(0..{num_classes - 1})")
    return index


def check_bounds(name: str, bounds: Any) -> tuple[float, float]:
    """A finite ``(low, high)`` pair with ``low < high``."""
    if not isinstance(bounds, Sequence) or isinstance(bounds, str) or len(bounds) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {bounds!r}")
    lo = check_number(f"{name}[0]", bounds[0])
    hi = check_number(f"{name}[1]", bounds[1])
    if not lo < hi:
        raise ValueError(f"{name} must have low < high, got {bounds!r}")
    return lo, hi
