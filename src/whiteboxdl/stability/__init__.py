"""Activation-pattern stability during training and pullback alignment (path stability hypothesis).

Example
-------
>>> import torch
>>> from whiteboxdl.stability import StabilityTracker
>>> tracker = StabilityTracker(torch.rand(8, 1, 28, 28), every=50)   # fit(..., callbacks=[tracker])
"""

from whiteboxdl.stability.callback import StabilityTracker
from whiteboxdl.stability.frozen import FrozenGates, frozen_gate_gradient, input_gradient
from whiteboxdl.stability.patterns import record_patterns
from whiteboxdl.stability.store import PatternStore

__all__ = ["FrozenGates", "PatternStore", "StabilityTracker", "frozen_gate_gradient",
           "input_gradient", "record_patterns"]
