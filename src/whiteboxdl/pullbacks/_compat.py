"""The private PyTorch APIs the pullback context relies on, each behind one small helper.

* :func:`will_engine_execute` — ``torch._C._will_engine_execute_node``: whether the running
  backward pass will use a node's gradient (lets the BatchNorm route skip parameter gradients
  under ``autograd.grad(x)``). Fallback when missing: "yes" (always compute; correct, slower).
* :func:`without_own_dispatch` — a copy of a ``torch.nn.functional`` Python function that skips
  its own ``__torch_function__`` check, so a mode sees the calls inside it (multi-head attention's
  softmax and bmm). It rewrites the function's globals; if PyTorch stops defining the function in
  Python or renames ``has_torch_function``, :func:`check_private_apis` says so.
* :func:`original_op` — run an op with every TorchFunctionMode disabled.

``tests/pullbacks/test_private_apis.py`` calls :func:`check_private_apis`, so a PyTorch release
that changes any of these fails one test with a message naming the API, not a numeric test.

Example
-------
>>> from whiteboxdl.pullbacks._compat import check_private_apis
>>> check_private_apis()
[]
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

import torch
import torch.nn.functional as F

_WILL_EXECUTE = getattr(torch._C, "_will_engine_execute_node", None)


def will_engine_execute(node: Any) -> bool:
    """Whether the running backward pass executes ``node`` (``True`` if PyTorch cannot tell)."""
    if node is None or _WILL_EXECUTE is None:
        return True
    return bool(_WILL_EXECUTE(node))


@functools.lru_cache(maxsize=None)
def without_own_dispatch(func: Callable) -> Callable:
    """A copy of ``func`` (a Python function of ``torch.nn.functional``) whose own
    ``has_torch_function`` check is off, so an active mode sees the ops it calls."""
    namespace = dict(func.__globals__)
    namespace["has_torch_function"] = lambda *args: False
    copy = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__,
                              func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    return copy


def original_op(call: Callable[[], Any]) -> Any:
    """Run ``call()`` with every TorchFunctionMode disabled (no re-interception)."""
    with torch._C.DisableTorchFunction():
        return call()


def check_private_apis() -> list[str]:
    """Problems with the private APIs above on this PyTorch (empty when all is well)."""
    problems = []
    if _WILL_EXECUTE is None:
        problems.append("torch._C._will_engine_execute_node is gone: BatchNorm parameter "
                        "gradients are now always computed (correct, slower)")
    mha = F.multi_head_attention_forward
    if not isinstance(mha, types.FunctionType) \
            or "has_torch_function" not in mha.__code__.co_names:
        problems.append("F.multi_head_attention_forward no longer checks has_torch_function in "
                        "Python: the attention rule cannot see its softmax/bmm")
    if not hasattr(torch._C, "DisableTorchFunction"):
        problems.append("torch._C.DisableTorchFunction is gone")
    return problems
