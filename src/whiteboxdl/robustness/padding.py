"""Constant dummy logits, so that DLR-based and targeted attacks are defined for binary models.

AutoAttack's DLR loss divides the margin by ``z_(1) - z_(3)`` (the largest minus the third-largest
logit) and its targeted variant by ``z_(1) - (z_(3) + z_(4)) / 2``: they need at least 3 and 4
logits. A binary classifier (like the 3-vs-5 semantic network) has 2. :class:`PaddedLogits` appends
constant logits far below any real one. They carry no gradient, take no softmax mass
(``exp(-1e4)`` underflows to 0, so cross-entropy is unchanged bit for bit), never win the argmax
(predictions are unchanged; checked on every forward), and make the DLR denominators a smooth
positive function of the real logits. Attacks that target "the k-th most likely class" are told
to target only real classes (see ``n_target_classes`` in :mod:`whiteboxdl.robustness.attacks`).

Example
-------
>>> import torch
>>> from whiteboxdl.robustness.padding import PaddedLogits
>>> model = torch.nn.Linear(3, 2)
>>> padded = PaddedLogits(model, n_real=2)
>>> x = torch.rand(5, 3)
>>> padded(x).shape, torch.equal(padded(x)[:, :2], model(x))
(torch.Size([5, 4]), True)
"""

from __future__ import annotations

import torch
from torch import nn

#: Attacks need at least this many logits (targeted DLR uses the 4th largest).
MIN_LOGITS = 4
#: The value of every dummy logit; far below the logits of any reasonable classifier.
DUMMY_LOGIT = -1.0e4


class PaddedLogits(nn.Module):
    """Wrap ``model`` so that it returns at least ``min_logits`` logits.

    Parameters
    ----------
    model:
        A classifier returning ``(batch, n_real)`` logits.
    n_real:
        Number of real classes (the width of ``model``'s output).
    min_logits:
        Pad with constant ``value`` up to this many logits (no padding if ``n_real`` is enough).
    value:
        The dummy logit. A forward pass raises ``ValueError`` if a real logit is not above it,
        because then the padding could change a prediction.
    """

    def __init__(self, model: nn.Module, n_real: int, min_logits: int = MIN_LOGITS,
                 value: float = DUMMY_LOGIT):
        super().__init__()
        if n_real < 1:
            raise ValueError(f"n_real must be >= 1, got {n_real}")
        self.model = model
        self.n_real = int(n_real)
        self.n_dummy = max(0, int(min_logits) - self.n_real)
        self.value = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if logits.ndim != 2 or logits.shape[1] != self.n_real:
            raise ValueError(f"expected logits of shape (batch, {self.n_real}), got "
                             f"{tuple(logits.shape)}")
        if self.n_dummy == 0:
            return logits
        if len(logits) and not bool((logits.detach().amax(dim=1) > self.value).all()):
            raise ValueError(f"a real logit is <= the dummy logit {self.value}; padding would "
                             "change predictions (pass a lower value)")
        dummy = logits.new_full((logits.shape[0], self.n_dummy), self.value)
        return torch.cat([logits, dummy], dim=1)


def pad_logits(model: nn.Module, n_real: int, min_logits: int = MIN_LOGITS) -> nn.Module:
    """``model`` itself if it has ``min_logits`` classes or more, else a :class:`PaddedLogits`."""
    return model if n_real >= min_logits else PaddedLogits(model, n_real, min_logits)
