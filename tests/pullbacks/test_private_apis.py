"""The private PyTorch APIs the context relies on: one test that names the one that changed."""

from __future__ import annotations

import torch

from whiteboxdl.pullbacks import _compat


def test_private_torch_apis_are_still_there():
    assert _compat.check_private_apis() == [], (
        f"PyTorch {torch.__version__} changed a private API whiteboxdl relies on: "
        f"{_compat.check_private_apis()}")


def test_will_engine_execute_answers_for_the_running_backward():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    seen = {}

    class Probe(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            seen["x"] = _compat.will_engine_execute(ctx.next_functions[0][0])
            seen["y"] = _compat.will_engine_execute(ctx.next_functions[1][0])
            return g, g

    out = Probe.apply(a * 1, b * 1)
    torch.autograd.grad(out.sum(), a)
    assert seen == {"x": True, "y": False}
    assert _compat.will_engine_execute(None) is True


def test_without_own_dispatch_lets_a_mode_see_the_inner_ops():
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    class Spy(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.seen.append(func)
            return func(*args, **(kwargs or {}))

    mha = torch.nn.MultiheadAttention(4, 2).eval()
    q = torch.randn(3, 1, 4)
    args = (q, q, q, 4, 2, mha.in_proj_weight, mha.in_proj_bias, None, None, False, 0.0,
            mha.out_proj.weight, mha.out_proj.bias)
    with Spy() as plain:
        F.multi_head_attention_forward(*args, training=False, need_weights=True)
    with Spy() as inner:
        copy = _compat.without_own_dispatch(F.multi_head_attention_forward)
        out = copy(*args, training=False, need_weights=True)
    assert F.softmax not in plain.seen and F.softmax in inner.seen and torch.bmm in inner.seen
    torch.testing.assert_close(out[0], F.multi_head_attention_forward(
        *args, training=False, need_weights=True)[0], rtol=0, atol=0)
