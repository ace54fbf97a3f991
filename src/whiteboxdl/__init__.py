"""whiteboxdl: white-box deep learning for PyTorch.

Excitation pullbacks explain trained ReLU networks; semantic-feature networks are interpretable
and robust by construction. The public API is importable from here; names load lazily, so
``import whiteboxdl`` (and ``whiteboxdl --help``) stays fast.

Example
-------
>>> import torch, whiteboxdl
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
>>> attr = whiteboxdl.ExcitationPullback(net.eval()).attribute(torch.randn(1, 3), target=0)
>>> attr.shape
torch.Size([1, 3])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS = {
    # excitation pullbacks
    "excitation_pullbacks": "whiteboxdl.pullbacks",
    "ExcitationPullback": "whiteboxdl.pullbacks",
    "PullbackAscent": "whiteboxdl.pullbacks",
    "GradientAscent": "whiteboxdl.pullbacks",
    "pullback_explain_func": "whiteboxdl.pullbacks",
    "explanation_figure": "whiteboxdl.pullbacks.grids",
    # semantic features
    "semantic_mnist": "whiteboxdl.semantic",
    "processing_steps": "whiteboxdl.semantic",
    "get_semantic_model": "whiteboxdl.semantic",
    "train_semantic": "whiteboxdl.semantic",
    # robustness
    "attack": "whiteboxdl.robustness.attacks",
    "evaluate_robustness": ("whiteboxdl.robustness.evaluate", "evaluate"),
    "reliability_curve": "whiteboxdl.robustness.reliability",
    # models and data
    "load_classifier": "whiteboxdl.models.zoo",
    "get_cnn": "whiteboxdl.models.cnn",
    "load_model": "whiteboxdl.models.checkpoint",
    "fit": "whiteboxdl.models.training",
    "TrainConfig": "whiteboxdl.models.training",
    "load_mnist": "whiteboxdl.data.mnist",
    "load_fashion_mnist": "whiteboxdl.data.mnist",
    "digit_subset": "whiteboxdl.data.mnist",
    "load_image": "whiteboxdl.data.images",
    "preprocess": "whiteboxdl.data.images",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'whiteboxdl' has no attribute {name!r}")
    module_name, attr = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
