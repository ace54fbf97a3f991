"""Self-describing model files: weights plus the builder that recreates the architecture.

A file holds ``{"builder": "whiteboxdl.module:function", "kwargs": {...}, "state_dict": {...}}``
and is read with ``torch.load(..., weights_only=True)``. The builder must be one the model
registry allow-lists (:func:`whiteboxdl.models.registry.get_builder`) and its kwargs must pass the
builder's declared bounds and signature — checked before anything is imported or called, so a
model file cannot run code.

Example
-------
>>> import tempfile, torch
>>> from whiteboxdl.models.checkpoint import save_model, load_model
>>> from whiteboxdl.models.checkpoint import tiny_mlp
>>> m = tiny_mlp(in_features=4, classes=3)
>>> path = tempfile.mktemp(suffix=".pt")
>>> save_model(path, m, "whiteboxdl.models.checkpoint:tiny_mlp", {"in_features": 4, "classes": 3})
>>> torch.equal(load_model(path)[0].weight, m[0].weight)
True
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from whiteboxdl.models.registry import (BuilderSpec, ModelFamily, Param, build_from_file,
                                        get_builder, read_model_file, register_family)

__all__ = ["load_model", "read_model_file", "save_model", "tiny_mlp"]


def save_model(path: str | Path, model: nn.Module, builder: str, kwargs: dict) -> None:
    """Write ``model``'s weights and how to rebuild it (``builder`` = a registered
    ``"module:function"``; ``kwargs`` must pass its declared bounds)."""
    spec = get_builder(builder, where="save_model")
    kwargs = spec.check_kwargs(dict(kwargs), where="save_model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    torch.save({"builder": builder, "kwargs": kwargs, "state_dict": model.state_dict()}, tmp)
    tmp.replace(path)


def load_model(path: str | Path) -> nn.Module:
    """Rebuild the architecture recorded in ``path`` and load its weights; eval mode.

    Raises ``ValueError`` for a builder that is not registered, kwargs outside its bounds, or
    weights that do not fit; ``FileNotFoundError`` for a missing file.
    """
    return build_from_file(path)[0]


def tiny_mlp(in_features: int = 4, classes: int = 2, hidden: int = 0) -> nn.Sequential:
    """A minimal linear (``hidden=0``) or one-hidden-layer ReLU classifier, for tests and docs."""
    if hidden:
        return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    return nn.Sequential(nn.Linear(in_features, classes))


register_family(ModelFamily(
    "examples", claims=lambda name: False, load=lambda name, weights, train: tiny_mlp(),
    contract=lambda name: None,  # type: ignore[arg-type, return-value]
    description="toy models for tests and docs (model files only)",
    builders=(BuilderSpec("whiteboxdl.models.checkpoint:tiny_mlp", {
        "in_features": Param(int, 1, 1_000_000), "classes": Param(int, 1, 100_000),
        "hidden": Param(int, 0, 100_000)}),)))
