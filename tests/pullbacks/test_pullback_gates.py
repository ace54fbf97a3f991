"""Soft gates and soft max-pool routing against analytic / hand-computed references (float64)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from whiteboxdl.pullbacks import excitation_pullbacks, soft_max_pool, soft_relu
from whiteboxdl.pullbacks.gates import normal_gate, sigmoid_gate



@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _gate(z, T, gate):
    if gate == "sigmoid":
        return 1 / (1 + torch.exp(-z / T))
    return 0.5 * (1 + torch.erf(z / (T * math.sqrt(2))))


class TinyMLP(nn.Module):
    """Three linear layers; ReLUs as a module, functional and method calls (all must be caught)."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(5, 7), nn.Linear(7, 6), nn.Linear(6, 3)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.l3(F.relu(self.l2(self.act(self.l1(x)))).relu())


@pytest.mark.parametrize("gate", ["sigmoid", "normal"])
@pytest.mark.parametrize("T", [0.3, 1.7])
def test_mlp_pullback_equals_analytic_product(gate, T):
    net = TinyMLP().eval()
    x = torch.randn(4, 5, requires_grad=True)
    with excitation_pullbacks(temperature=T, gate=gate):
        out = net(x)
        out[:, 2].sum().backward()
    for i in range(4):
        z1 = net.l1.weight @ x[i].detach() + net.l1.bias
        z2 = net.l2.weight @ torch.relu(z1) + net.l2.bias
        # the second ReLU is applied twice (F.relu then .relu()): gate(z2) * gate(relu(z2))
        s2 = _gate(z2, T, gate) * _gate(torch.relu(z2), T, gate)
        expected = net.l3.weight[2] @ torch.diag(s2) @ net.l2.weight @ torch.diag(_gate(z1, T, gate)) \
            @ net.l1.weight
        torch.testing.assert_close(x.grad[i], expected, rtol=1e-12, atol=1e-14)


def _conv_matrix(conv: nn.Conv2d, shape):
    """Matrix of the (linear part of the) convolution, built by applying it to basis images."""
    n = math.prod(shape)
    basis = torch.eye(n).reshape(n, *shape)
    with torch.no_grad():
        return (F.conv2d(basis, conv.weight, None, conv.stride, conv.padding)).reshape(n, -1).T


def _pool_matrix(x, k, s, p, d, T, rule, ceil_mode=False):
    """Soft routing matrix of a 2d max-pool for one (C,H,W) input, by explicit loops over windows."""
    C, H, W = x.shape
    out = F.max_pool2d(x[None], k, s, p, d, ceil_mode=ceil_mode)[0]
    _, OH, OW = out.shape
    M = torch.zeros(C * OH * OW, C * H * W)
    for c, i, j in itertools.product(range(C), range(OH), range(OW)):
        cells = [(i * s[0] - p[0] + a * d[0], j * s[1] - p[1] + b * d[1])
                 for a in range(k[0]) for b in range(k[1])]
        cells = [(r, q) for r, q in cells if 0 <= r < H and 0 <= q < W]
        vals = torch.stack([x[c, r, q] for r, q in cells])
        w = torch.softmax(vals / T, 0)
        if rule == "smoothmax":
            w = w * (1 + (vals - (w * vals).sum()) / T)
        for (r, q), wv in zip(cells, w):
            M[(c * OH + i) * OW + j, (c * H + r) * W + q] += wv
    return M


@pytest.mark.parametrize("rule", ["smoothmax", "detached"])
def test_cnn_pullback_equals_analytic_product(rule):
    conv, lin = nn.Conv2d(2, 3, 3, padding=1), nn.Linear(3 * 3 * 3, 4)
    net = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), lin).eval()
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    T, Tp = 0.3, 0.5
    with excitation_pullbacks(temperature=T, maxpool_temperature=Tp, maxpool_rule=rule):
        net(x)[0, 1].backward()
    C = _conv_matrix(conv, (2, 6, 6))
    z = (C @ x.detach().flatten()) + conv.bias.repeat_interleave(36)
    P = _pool_matrix(torch.relu(z).reshape(3, 6, 6), (2, 2), (2, 2), (0, 0), (1, 1), Tp, rule)
    expected = lin.weight[1] @ P @ torch.diag(torch.sigmoid(z / T)) @ C
    torch.testing.assert_close(x.grad.flatten(), expected, rtol=1e-12, atol=1e-14)


POOL_CASES = [  # kernel, stride, padding, dilation, ceil_mode, size
    ((3, 3), (2, 2), (1, 1), (1, 1), False, (7, 7)),
    ((3, 2), (2, 1), (1, 0), (2, 1), False, (9, 6)),
    ((2, 2), (2, 2), (0, 0), (1, 1), True, (5, 7)),
    ((3, 3), (2, 3), (1, 1), (1, 2), True, (8, 9)),
    ((4, 2), (3, 2), (2, 1), (1, 1), True, (6, 5)),
]


@pytest.mark.parametrize("rule", ["smoothmax", "detached"])
@pytest.mark.parametrize("k,s,p,d,ceil,size", POOL_CASES)
@pytest.mark.parametrize("chunk", [1 << 16, 7])
def test_maxpool_routing_matches_hand_computed_windows(rule, k, s, p, d, ceil, size, chunk,
                                                       monkeypatch):
    from whiteboxdl.pullbacks import gates

    monkeypatch.setattr(gates, "POOL_CHUNK_ELEMENTS", {"cpu": chunk})     # 7: one row per chunk
    x = torch.randn(2, *size)
    g = torch.randn_like(F.max_pool2d(x[None], k, s, p, d, ceil_mode=ceil)[0])
    xr = x.clone().requires_grad_()
    with excitation_pullbacks(maxpool_temperature=0.4, maxpool_rule=rule):
        out = F.max_pool2d(xr, k, s, p, d, ceil_mode=ceil)
    out.backward(g)
    expected = g.flatten() @ _pool_matrix(x, k, s, p, d, 0.4, rule, ceil)
    torch.testing.assert_close(xr.grad.flatten(), expected, rtol=1e-12, atol=1e-14)


def test_smoothmax_rule_is_derivative_of_smooth_max():
    """Paper variant: backward of sum x * softmax(x/T) over each window, checked by autograd."""
    x = torch.randn(1, 1, 4, 6, requires_grad=True)
    out = soft_max_pool(x, (2, 3), temperature=0.25, rule="smoothmax")
    (gx,) = torch.autograd.grad(out.sum(), x)
    windows = x.unfold(2, 2, 2).unfold(3, 3, 3).reshape(1, 1, 2, 2, 6)
    smooth = (windows * torch.softmax(windows / 0.25, -1)).sum(-1)
    (ref,) = torch.autograd.grad(smooth.sum(), x)
    torch.testing.assert_close(gx, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [1, 3])
def test_maxpool_1d_3d_routing_with_padding(n):
    """1d/3d against the 2d implementation's hand-checked semantics: embed as extra unit dims."""
    shape = (2, 3) + (7,) * n
    x = torch.randn(*shape, requires_grad=True)
    pool = {1: F.max_pool1d, 3: F.max_pool3d}[n]
    with excitation_pullbacks(maxpool_temperature=0.3, maxpool_rule="detached"):
        out, idx = pool(x, 3, 2, 1, return_indices=True)
    torch.testing.assert_close(out, pool(x, 3, 2, 1))
    (g,) = torch.autograd.grad(out.sum(), x)
    # reference: explicit window loop in n dims
    ref = torch.zeros_like(x)
    xs = x.detach()
    for pos in itertools.product(*[range(o) for o in out.shape[2:]]):
        cells = [c for c in itertools.product(*[range(q * 2 - 1, q * 2 + 2) for q in pos])
                 if all(0 <= ci < 7 for ci in c)]
        vals = torch.stack([xs[(..., *c)] for c in cells], -1)
        w = torch.softmax(vals / 0.3, -1)
        for j, c in enumerate(cells):
            ref[(..., *c)] += w[..., j]
    torch.testing.assert_close(g, ref, rtol=1e-12, atol=1e-14)


def _route_by_window_sums(x, grad, geometry, out_size, rule):
    """The fast path's routing (T = 0.3) and the rows it hands to explicit windows."""
    from whiteboxdl.pullbacks import gates

    out, lowest = torch.empty_like(x), x.new_empty(x.shape[0])
    gates._window_sum_route(x, grad, geometry, out_size, 0.3, rule, out=out, lowest=lowest)
    return out, gates._unroutable(lowest, geometry)


@pytest.mark.parametrize("rule", ["smoothmax", "detached"])
@pytest.mark.parametrize("n, kernel, stride, padding, size", [
    (1, (3,), (2,), (1,), (9,)), (1, (2,), (3,), (0,), (8,)), (2, (3, 3), (2, 2), (1, 1), (9, 8)),
    (2, (2, 3), (1, 2), (1, 0), (6, 7)), (2, (2, 2), (3, 3), (0, 0), (8, 8)),
    (3, (2, 3, 2), (2, 1, 2), (1, 1, 0), (5, 4, 5))])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_window_sum_route_equals_materialised_windows(rule, n, kernel, stride, padding, size,
                                                      ceil_mode):
    """The fast path (one exponential per element, window sums) against explicit windows."""
    from whiteboxdl.pullbacks import gates

    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]
    x = torch.randn(6, *size) * 3
    out_size = pool(x[:, None], kernel, stride, padding, ceil_mode=ceil_mode).shape[2:]
    grad = torch.randn(6, *out_size)
    geometry = gates.PoolGeometry(n, kernel, stride, padding)
    fast, redo = _route_by_window_sums(x, grad, geometry, out_size, rule)
    assert redo.numel() == 0
    explicit = gates._soft_route(x, grad, geometry, out_size, 0.3, rule)
    torch.testing.assert_close(fast, explicit, rtol=1e-11, atol=1e-13)


def test_window_sum_route_is_accurate_in_float32():
    """Float32 on a ResNet-stem-like input: as close to the float64 routing as explicit windows."""
    from whiteboxdl.pullbacks import gates

    x = torch.randn(64, 30, 30, dtype=torch.float32).relu()
    grad = torch.randn(64, 15, 15, dtype=torch.float32)
    geometry = gates.PoolGeometry(2, 3, 2, 1)
    fast, redo = _route_by_window_sums(x, grad, geometry, (15, 15), "smoothmax")
    assert redo.numel() == 0
    exact = gates._soft_route(x.double(), grad.double(), geometry, (15, 15), 0.3, "smoothmax")
    assert (fast.double() - exact).abs().max() <= 5e-6 * exact.abs().max()


def test_rows_the_window_sums_cannot_hold_fall_back_to_explicit_windows():
    """A window ~1000/T below its row's max underflows exp: only that row takes the explicit
    path (a -inf input does not need it). Every row matches the hand-computed routing."""
    from whiteboxdl.pullbacks import gates

    x = torch.randn(3, 4, 4)
    x[0, :2, :2] += 1000.0                   # row 0: far below its max elsewhere
    x[2, 3, 3] = -math.inf                   # row 2: a -inf input; row 1 is ordinary
    grad = torch.randn(3, 2, 2)
    _, redo = _route_by_window_sums(x, grad, gates.PoolGeometry(2, 2, 2), (2, 2), "smoothmax")
    assert redo.tolist() == [0]
    xr = x[None].clone().requires_grad_()
    with excitation_pullbacks(maxpool_temperature=0.3):
        (g,) = torch.autograd.grad(F.max_pool2d(xr, 2), xr, grad[None])
    finite = torch.where(torch.isfinite(x), x, torch.full_like(x, -1e300))
    expected = grad.flatten() @ _pool_matrix(finite, (2, 2), (2, 2), (0, 0), (1, 1), 0.3,
                                             "smoothmax", False)
    torch.testing.assert_close(g.flatten(), expected, rtol=1e-12, atol=1e-14)


def test_rows_with_nan_or_inf_inputs_take_explicit_windows():
    """NaN and +inf inputs make the window sums NaN: those rows (only) are routed over explicit
    windows, so NaN stays inside the windows that hold it, as in the explicit path."""
    from whiteboxdl.pullbacks import gates

    x = torch.randn(3, 6, 6)
    x[1, 0, 0], x[2, 5, 5] = math.nan, math.inf
    grad = torch.randn(3, 3, 3)
    geometry = gates.PoolGeometry(2, 3, 2, 1)
    assert _route_by_window_sums(x, grad, geometry, (3, 3), "smoothmax")[1].tolist() == [1, 2]
    routed = gates.soft_pool_backward(x, grad, geometry, (3, 3), 0.3, "smoothmax")
    explicit = gates._soft_route(x, grad, geometry, (3, 3), 0.3, "smoothmax")
    torch.testing.assert_close(routed, explicit, rtol=1e-12, atol=1e-14, equal_nan=True)
    assert torch.isfinite(routed[0]).all() and routed[1, 4:, :].isfinite().all()
    assert routed[1, 0, 0].isnan()


def test_padding_gets_no_weight_even_with_negative_inputs():
    """Zero padding would attract weight from all-negative windows; -inf padding must not."""
    x = -torch.rand(1, 1, 3, 3) - 1.0
    x.requires_grad_()
    with excitation_pullbacks(maxpool_temperature=0.3, maxpool_rule="detached"):
        F.max_pool2d(x, 3, 1, 1).sum().backward()
    # every output window's weights sum to 1 over real cells -> total gradient = #outputs
    assert x.grad.sum().item() == pytest.approx(9.0, abs=1e-12)


def test_temperature_limits():
    net = TinyMLP().eval()
    pool_net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(2 * 3 * 3, 2)).eval()
    for model, x in ((net, torch.randn(3, 5)), (pool_net, torch.randn(3, 1, 8, 8))):
        x.requires_grad_()
        (vanilla,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
        with excitation_pullbacks(temperature=1e-9, maxpool_temperature=1e-9,
                                  maxpool_rule="detached"):
            (cold,) = torch.autograd.grad(model(x)[:, 0].sum(), x)
        torch.testing.assert_close(cold, vanilla, rtol=1e-12, atol=1e-14)
    # T -> infinity: every ReLU gate is 0.5 -> the backward of the linear network times 0.5^2
    x = torch.randn(3, 5, requires_grad=True)
    with excitation_pullbacks(temperature=1e12):
        (hot,) = torch.autograd.grad(net(x)[:, 0].sum(), x)
    linear = 0.5 * 0.25 * net.l3.weight[0] @ net.l2.weight @ net.l1.weight  # relu, F.relu∘.relu
    torch.testing.assert_close(hot, linear.expand(3, 5), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), "0.3", True, None])
def test_bad_temperatures_are_rejected(bad):
    with pytest.raises(ValueError, match="temperature"):
        excitation_pullbacks(temperature=bad)
    with pytest.raises(ValueError, match="maxpool_temperature"):
        excitation_pullbacks(maxpool_temperature=bad)
    with pytest.raises(ValueError, match="temperature"):
        soft_relu(torch.ones(2), temperature=bad)


def test_bad_gate_rule_names():
    with pytest.raises(ValueError, match="gate"):
        excitation_pullbacks(gate="tanh")
    with pytest.raises(ValueError, match="maxpool_rule"):
        excitation_pullbacks(maxpool_rule="avg")
    with pytest.raises(ValueError, match="rules"):
        excitation_pullbacks(rules=("relu", "softplus"))


def test_silu_gelu_gates():
    z = torch.randn(50, requires_grad=True)
    with excitation_pullbacks(rules=("silu", "gelu"), silu_temperature=1.6, gelu_temperature=1.0):
        y1, y2 = F.silu(z), nn.GELU()(z)
    torch.testing.assert_close(y1, F.silu(z), rtol=0, atol=0)
    torch.testing.assert_close(y2, F.gelu(z), rtol=0, atol=0)
    (g1,) = torch.autograd.grad(y1.sum(), z)
    (g2,) = torch.autograd.grad(y2.sum(), z)
    torch.testing.assert_close(g1, sigmoid_gate(z.detach(), 1.6))
    torch.testing.assert_close(g2, normal_gate(z.detach(), 1.0))
    torch.testing.assert_close(g2, _gate(z.detach(), 1.0, "normal"))


def test_layernorm_statistics_are_constant_in_backward():
    ln = nn.LayerNorm(6)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(6))
        ln.bias.copy_(torch.randn(6))
    x = torch.randn(3, 4, 6, requires_grad=True)
    with excitation_pullbacks(rules=("layernorm",)):
        y = ln(x)
    assert torch.equal(y, ln(x))
    g = torch.randn_like(y)
    gx, gw, gb = torch.autograd.grad(y, (x, ln.weight, ln.bias), g)
    mean = x.detach().mean(-1, keepdim=True)
    sigma = torch.sqrt(x.detach().var(-1, unbiased=False, keepdim=True) + ln.eps)
    torch.testing.assert_close(gx, g * ln.weight / sigma)
    torch.testing.assert_close(gw, (g * (x.detach() - mean) / sigma).sum((0, 1)))
    torch.testing.assert_close(gb, g.sum((0, 1)))


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_sdpa_weights_constant_in_backward(T):
    q, k, v = (torch.randn(2, 3, 5, 4, requires_grad=True) for _ in range(3))
    mask = torch.rand(5, 5) > 0.3
    mask.fill_diagonal_(True)
    with excitation_pullbacks(rules=("attention",), attention_temperature=T):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.equal(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    g = torch.randn_like(out)
    gq, gk, gv = torch.autograd.grad(out, (q, k, v), g, allow_unused=True, materialize_grads=True)
    scores = (q @ k.transpose(-2, -1) / 2.0).masked_fill(~mask, -math.inf)
    A = torch.softmax(scores.detach() / T, -1)
    torch.testing.assert_close(gv, A.transpose(-2, -1) @ g)
    assert gq.abs().max() == 0 and gk.abs().max() == 0


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_value_path_only(need_weights):
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(2, 5, 8, requires_grad=True)
    with excitation_pullbacks(rules=("attention",)):
        out, _ = mha(x, x, x, need_weights=need_weights)
    ref, _ = mha(x, x, x, need_weights=need_weights)
    assert torch.equal(out, ref)
    (gx,) = torch.autograd.grad(out.sum(), x)
    # independent reference: weights from a no-grad pass, gradient only through the values
    with torch.no_grad():
        _, A = mha(x, x, x, need_weights=True, average_attn_weights=False)     # (N, H, L, S)
    Wv, bv = mha.in_proj_weight[16:], mha.in_proj_bias[16:]
    v = (x @ Wv.T + bv).reshape(2, 5, 2, 4).transpose(1, 2)
    o = (A @ v).transpose(1, 2).reshape(2, 5, 8)
    (expected,) = torch.autograd.grad(mha.out_proj(o).sum(), x)
    torch.testing.assert_close(gx, expected)


def test_double_backward_is_a_clear_error():
    """The soft rules are first-order; create_graph=True names the fix instead of failing inside
    an out= kernel."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(2 * 3 * 3, 1))
    for rules in (("relu",), ("maxpool",)):
        x = torch.randn(1, 1, 8, 8, requires_grad=True)
        with excitation_pullbacks(rules=rules), \
                pytest.raises(RuntimeError, match="first-order backward only"):
            torch.autograd.grad(net(x).sum(), x, create_graph=True)
        with excitation_pullbacks(rules=rules):
            (g,) = torch.autograd.grad(net(x).sum(), x)     # first order still works
        assert g.shape == x.shape and g.abs().sum() > 0
