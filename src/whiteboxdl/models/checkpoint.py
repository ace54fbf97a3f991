"""Self-describing model files: weights plus the builder that recreates the architecture.

A file holds ``{"builder": "whiteboxdl.module:function", "kwargs": {...}, "state_dict": {...}}``
and is read with ``torch.load(..., weights_only=True)``; only builders inside ``whiteboxdl`` are
imported.

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

import importlib
from pathlib import Path

import torch
from torch import nn


def save_model(path: str | Path, model: nn.Module, builder: str, kwargs: dict) -> None:
    """Write ``model``'s weights and how to rebuild it (``builder`` = ``"module:function"``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    torch.save({"builder": builder, "kwargs": dict(kwargs), "state_dict": model.state_dict()}, tmp)
    tmp.replace(path)


def _resolve_builder(builder: str):
    module_name, _, func_name = builder.partition(":")
    if not module_name.startswith("whiteboxdl.") or not func_name:
        raise ValueError(f"refusing to import builder {builder!r}: only 'whiteboxdl.<module>:<fn>'")
    return getattr(importlib.import_module(module_name), func_name)


def read_model_file(path: str | Path) -> dict:
    """Load the raw dict of a model file, with clear errors for missing or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a loadable whiteboxdl model file ({exc})") from exc
    if not isinstance(state, dict) or not {"builder", "kwargs", "state_dict"} <= set(state):
        raise ValueError(f"{path}: not a whiteboxdl model file (expected keys builder, kwargs, "
                         "state_dict); plain state dicts need the architecture built by hand")
    return state


def load_model(path: str | Path) -> nn.Module:
    """Rebuild the architecture recorded in ``path`` and load its weights; eval mode."""
    state = read_model_file(path)
    model = _resolve_builder(state["builder"])(**state["kwargs"])
    model.load_state_dict(state["state_dict"])
    return model.eval()


def tiny_mlp(in_features: int = 4, classes: int = 2, hidden: int = 0) -> nn.Sequential:
    """A minimal linear (``hidden=0``) or one-hidden-layer ReLU classifier, for tests and docs."""
    if hidden:
        return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes))
    return nn.Sequential(nn.Linear(in_features, classes))
