"""A Quantus-compatible ``explain_func``: excitation pullbacks (or their ascent) as NumPy arrays.

Example
-------
>>> import numpy as np, torch
>>> from whiteboxdl.pullbacks.explain_func import pullback_explain_func
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
>>> pullback_explain_func(net, np.ones((2, 1, 2, 2), np.float32), np.array([0, 2])).shape
(2, 1, 2, 2)
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from torch import nn

from whiteboxdl.pullbacks.ascent import PullbackAscent
from whiteboxdl.pullbacks.attribute import ExcitationPullback
from whiteboxdl.pullbacks.checks import targets_tensor
from whiteboxdl.pullbacks.settings import PullbackSettings
from whiteboxdl.validation import check_choice

#: Keywords of :class:`PullbackAscent` besides the model and the pullback settings.
ASCENT_KEYWORDS = tuple(p for p in inspect.signature(PullbackAscent).parameters
                        if p not in ("model", "settings", "options"))


def pullback_explain_func(model: nn.Module, inputs: np.ndarray | torch.Tensor,
                          targets: np.ndarray | torch.Tensor | int | list,
                          **kwargs: Any) -> np.ndarray:
    """Quantus ``explain_func``: pullbacks of ``model`` for ``inputs`` and ``targets``.

    ``kwargs``: ``method`` (``"pullback"``, the default, or ``"ascent"`` for the PullbackAscent
    difference), ``device``, every :class:`~whiteboxdl.pullbacks.settings.PullbackSettings`
    keyword, and for the ascent its ``steps``, ``alpha``, ``eps``, ``clip``, ``bounds``. Other keys
    (Quantus passes its own) are ignored.
    """
    method = check_choice("method", kwargs.pop("method", "pullback"), ("pullback", "ascent"))
    device = kwargs.pop("device", None)
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else "cpu"
    x = torch.as_tensor(inputs if torch.is_tensor(inputs) else np.asarray(inputs),
                        dtype=torch.float32, device=device)
    t = targets_tensor(targets if torch.is_tensor(targets) or isinstance(targets, int)
                       else np.asarray(targets), x.shape[0], device)
    settings, rest = PullbackSettings.split(kwargs)
    if method == "pullback":
        result = ExcitationPullback(model, **settings).attribute(x, target=t)
    else:
        ascent = {k: v for k, v in rest.items() if k in ASCENT_KEYWORDS}
        result = PullbackAscent(model, **ascent, **settings).attribute(x, target=t)
    return result.detach().cpu().numpy()
