"""Excitation pullbacks: soft-gated backward passes for any PyTorch model.

Example
-------
>>> import torch
>>> from whiteboxdl.pullbacks import excitation_pullbacks
>>> x = torch.tensor([-0.5, 1.0], requires_grad=True)
>>> with excitation_pullbacks():
...     torch.relu(x).sum().backward()
>>> bool((x.grad > 0).all())
True
"""

from whiteboxdl.pullbacks.ascent import AscentResult, GradientAscent, PullbackAscent
from whiteboxdl.pullbacks.attribute import ExcitationPullback, pullback_explain_func
from whiteboxdl.pullbacks.gates import (
    GATES,
    MAXPOOL_RULES,
    check_temperature,
    normal_gate,
    sigmoid_gate,
    soft_max_pool,
    soft_relu,
)
from whiteboxdl.pullbacks.mode import (
    ALL_RULES,
    DEFAULT_RULES,
    ExcitationPullbacks,
    excitation_pullbacks,
)

__all__ = [
    "AscentResult", "ExcitationPullback", "GradientAscent", "PullbackAscent",
    "pullback_explain_func", "ALL_RULES", "DEFAULT_RULES", "GATES", "MAXPOOL_RULES", "ExcitationPullbacks",
    "check_temperature", "excitation_pullbacks", "normal_gate", "sigmoid_gate", "soft_max_pool",
    "soft_relu",
]
