"""Temporarily change a model's mode and restore every module exactly as it was.

Example
-------
>>> import torch
>>> from whiteboxdl.models.state import eval_mode
>>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout()).train()
>>> net[1].eval()                      # a mixed state, kept as it is
Dropout(p=0.5, inplace=False)
>>> with eval_mode(net):
...     net.training, net[0].training
(False, False)
>>> net.training, net[0].training, net[1].training
(True, True, False)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from torch import nn


@contextmanager
def eval_mode(model: Callable, freeze: bool = False) -> Iterator[Callable]:
    """Eval mode for the duration of the block (BatchNorm statistics and dropout untouched);
    with ``freeze`` the parameters stop requiring grad too. Every module's ``training`` flag and
    every parameter's ``requires_grad`` are restored afterwards. Non-modules pass through."""
    if not isinstance(model, nn.Module):
        yield model
        return
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()] if freeze else []
    model.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in grads:
            p.requires_grad_(flag)
