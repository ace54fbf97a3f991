"""The semantic networks in the model registry: ``semantic-3-5`` (the cached default model of
those digits) and the builder their model files name.

Example
-------
>>> from whiteboxdl.models.registry import model_contract
>>> model_contract("semantic-3-5").class_names
('3', '5')
"""

from __future__ import annotations

import re
from dataclasses import replace

from torch import nn

from whiteboxdl.models.registry import (DIGITS, BuilderSpec, InputContract, ModelFamily, Param,
                                        register_family)
from whiteboxdl.semantic.network import ARCHS, BUILDER, SIZE_BOUNDS, SIZE_CHOICES
from whiteboxdl.semantic.samplers import POSE_CONVENTIONS
_NAME = re.compile(r"^semantic-(\d(?:-\d)+)$")


def parse_semantic_name(name: str) -> tuple[int, ...] | None:
    """``semantic-3-5`` -> ``(3, 5)``; None for other names."""
    match = _NAME.match(name)
    return tuple(int(d) for d in match.group(1).split("-")) if match else None


def _digits(name: str) -> tuple[int, ...]:
    digits = parse_semantic_name(name)
    if digits is None or len(set(digits)) != len(digits):
        raise ValueError(f"{name!r}: semantic models are named semantic-D-D... with 2 to 10 "
                         "distinct digits, e.g. semantic-3-5")
    return digits


def _load(name: str, weights, train_if_missing: bool) -> nn.Module:
    from whiteboxdl.semantic.train import get_semantic_model

    if weights not in (None, "DEFAULT"):
        raise ValueError(f"{name} is the project's default semantic network; it has no weight "
                         f"choices (got weights={weights!r})")
    return get_semantic_model(_digits(name), train_if_missing=train_if_missing)


def _contract(name: str) -> InputContract:
    return replace(DIGITS, class_names=tuple(str(d) for d in _digits(name)))


def _available(name: str, weights) -> tuple[bool, str]:
    from whiteboxdl.semantic.train import default_model_path

    if default_model_path(_digits(name)).is_file():
        return True, "trained and cached"
    minutes = "about a CPU minute" if len(_digits(name)) == 2 else "CPU minutes"
    return True, f"not trained yet: the first request trains it ({minutes})"


register_family(ModelFamily(
    "semantic", claims=lambda name: parse_semantic_name(name) is not None, load=_load,
    contract=_contract, available=_available,
    label=lambda name: f"semantic {'-vs-'.join(map(str, _digits(name)))}",
    names=lambda: ("semantic-3-5", "semantic-0-1-2-3-4-5-6-7-8-9"),
    description="the semantic-feature networks (semantic-D-D..., default recipe, cached)",
    builders=(BuilderSpec(BUILDER, {
        "digits": Param("ints", 0, 9, length=(2, 10)), "two_step": Param(bool),
        "conv": Param(bool), "pose_convention": Param(str, choices=POSE_CONVENTIONS),
        "arch": Param(str, choices=tuple(ARCHS)),
        **{name: Param(kind, low, high, choices=SIZE_CHOICES.get(name))      # type: ignore[arg-type]
           for name, (kind, low, high) in SIZE_BOUNDS.items()}},
        contract=lambda kwargs: replace(DIGITS, class_names=tuple(
            str(d) for d in kwargs.get("digits", (3, 5))))),)))
