"""The context: real torchvision models, functional calls, in-place ReLUs, threads, nesting."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from whiteboxdl.pullbacks import excitation_pullbacks


def _grad(model, x, target=3, **ctx):
    x = x.detach().clone().requires_grad_()
    with excitation_pullbacks(**ctx):
        out = model(x)
        (g,) = torch.autograd.grad(out[:, target].sum(), x)
    return out.detach(), g


@pytest.fixture(scope="module")
def densenet():
    torch.manual_seed(1)
    return torchvision.models.densenet121(num_classes=10).eval()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "vgg11_bn", "densenet121"])
def test_forward_bit_identical_on_torchvision(name, densenet):
    torch.manual_seed(0)
    model = densenet if name == "densenet121" else getattr(torchvision.models, name)(
        num_classes=10).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modules = [type(m) for m in model.modules()]
    with torch.no_grad():
        plain = model(x)
    out, g = _grad(model, x)
    assert torch.equal(out, plain)
    with torch.no_grad(), excitation_pullbacks():
        assert torch.equal(model(x), plain)
    vanilla_x = x.clone().requires_grad_()
    (vanilla,) = torch.autograd.grad(model(vanilla_x)[:, 3].sum(), vanilla_x)
    assert (g - vanilla).norm() > 0.05 * vanilla.norm()       # the backward did change
    # the model is never mutated
    assert [type(m) for m in model.modules()] == modules
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def _module_swap_pullback(model, x, T=0.3):
    """The public code's approach: replace nn.ReLU modules only (misses functional calls)."""
    from whiteboxdl.pullbacks.gates import SoftGate, sigmoid_gate

    class SoftReLU(nn.Module):
        def forward(self, z):
            return SoftGate.apply(z, torch.relu, sigmoid_gate, T, False)

    originals = {}
    for _name, module in model.named_modules():
        for child_name, child in module.named_children():
            if isinstance(child, nn.ReLU):
                originals[(module, child_name)] = child
                setattr(module, child_name, SoftReLU())
    try:
        x = x.detach().clone().requires_grad_()
        (g,) = torch.autograd.grad(model(x)[:, 3].sum(), x)
    finally:
        for (module, child_name), child in originals.items():
            setattr(module, child_name, child)
    return g


@pytest.mark.slow
def test_densenet_functional_final_relu_is_caught(densenet, monkeypatch):
    """DenseNet121 applies its last ReLU as F.relu in forward(): module swapping misses it."""
    import inspect

    from whiteboxdl.pullbacks.gates import SoftGate, sigmoid_gate

    assert "F.relu(" in inspect.getsource(type(densenet).forward)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    _, ours = _grad(densenet, x, rules=("relu",))
    swapped = _module_swap_pullback(densenet, x)
    relative = ((ours - swapped).norm() / ours.norm()).item()
    assert relative > 0.05, relative
    # module swap plus a soft functional ReLU (patched by hand) reproduces the context
    monkeypatch.setattr(F, "relu", lambda t, inplace=False: SoftGate.apply(
        t, torch.relu, sigmoid_gate, 0.3, False))
    both = _module_swap_pullback(densenet, x)
    torch.testing.assert_close(both, ours, rtol=1e-4, atol=1e-7)


class InplaceReused(nn.Module):
    def __init__(self, inplace: bool, reuse: bool):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 5)
        self.r1 = nn.ReLU(inplace=inplace)
        self.r2 = self.r1 if reuse else nn.ReLU(inplace=inplace)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        h = self.r1(self.c1(x))
        h = self.pool(self.r2(self.c2(h)))
        h = F.relu(h, inplace=True) if self.r1.inplace else F.relu(h)
        return self.fc(h.flatten(1))


def test_inplace_and_reused_relus_equal_distinct_out_of_place():
    torch.manual_seed(0)
    ref = InplaceReused(inplace=False, reuse=False).eval()
    x = torch.randn(3, 2, 8, 8)
    out_ref, g_ref = _grad(ref, x, target=1)
    for inplace, reuse in [(True, False), (False, True), (True, True)]:
        model = InplaceReused(inplace, reuse).eval()
        model.load_state_dict(ref.state_dict())
        out, g = _grad(model, x, target=1)
        assert torch.equal(out, out_ref)
        torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-8)
    # the in-place gate used the pre-activation: the gradient reaches negative pre-activations
    h = torch.randn(20, requires_grad=True)
    with excitation_pullbacks():
        y = h * 1.0
        F.relu(y, inplace=True).sum().backward()
    torch.testing.assert_close(h.grad, torch.sigmoid(h.detach() / 0.3))


def test_all_pool_and_relu_forms_are_caught():
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    x1 = torch.randn(1, 2, 6, requires_grad=True)
    calls = [
        lambda: F.max_pool2d(x, 2), lambda: F.max_pool2d(x, 2, return_indices=True)[0],
        lambda: torch.max_pool2d(x, 2), lambda: nn.MaxPool2d(2)(x),
        lambda: F.max_pool2d_with_indices(x, 2)[0], lambda: nn.MaxPool2d(2, return_indices=True)(x)[0],
        lambda: torch.max_pool1d(x1, 2), lambda: torch.max_pool1d_with_indices(x1, 2)[0],
        lambda: F.max_pool1d(x1, kernel_size=2), lambda: torch.relu(x), lambda: x.relu(),
        lambda: F.relu(x), lambda: nn.ReLU()(x), lambda: (x * 1).relu_(),
        lambda: torch.relu_(x * 1), lambda: F.relu_(x * 1),
    ]
    for call in calls:
        plain = call()
        (g_plain,) = torch.autograd.grad(plain.sum(), plain_input := (x if plain.ndim == 4 else x1))
        with excitation_pullbacks(temperature=0.5, maxpool_temperature=0.5):
            soft = call()
        assert torch.equal(soft, plain)
        (g_soft,) = torch.autograd.grad(soft.sum(), plain_input)
        assert not torch.allclose(g_soft, g_plain), call


def test_indices_are_identical_and_non_differentiable():
    x = torch.randn(1, 1, 5, 5, requires_grad=True)
    ref_out, ref_idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    with excitation_pullbacks():
        out, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    assert torch.equal(out, ref_out) and torch.equal(idx, ref_idx) and not idx.requires_grad


def test_threads_with_different_temperatures_match_sequential():
    torch.manual_seed(0)
    model = InplaceReused(inplace=True, reuse=True).eval()
    x = torch.randn(2, 2, 8, 8)
    temps = [0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0]
    sequential = [_grad(model, x, temperature=t, maxpool_temperature=t)[1] for t in temps]
    results = [None] * len(temps)
    barrier = threading.Barrier(len(temps))

    def work(i):
        barrier.wait()
        for _ in range(3):
            results[i] = _grad(model, x, temperature=temps[i], maxpool_temperature=temps[i])[1]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(temps))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, sequential):
        assert torch.equal(got, want)
    assert len({round(float(r.norm()), 6) for r in results}) == len(temps)


def test_restores_after_exception_and_nests():
    z = torch.tensor([-1.0, 1.0], requires_grad=True)

    def grad():
        (g,) = torch.autograd.grad(torch.relu(z).sum(), z)
        return g

    with pytest.raises(RuntimeError, match="boom"):
        with excitation_pullbacks():
            raise RuntimeError("boom")
    assert torch.equal(grad(), torch.tensor([0.0, 1.0]))
    with excitation_pullbacks(temperature=0.3):
        outer = grad()
        with excitation_pullbacks(temperature=2.0):
            inner = grad()
        again = grad()
    torch.testing.assert_close(outer, torch.sigmoid(z.detach() / 0.3))
    torch.testing.assert_close(inner, torch.sigmoid(z.detach() / 2.0))
    torch.testing.assert_close(again, outer)
    assert torch.equal(grad(), torch.tensor([0.0, 1.0]))


def test_backward_after_leaving_the_context_keeps_the_rule():
    z = torch.tensor([-1.0, 1.0], requires_grad=True)
    with excitation_pullbacks(temperature=0.3):
        y = torch.relu(z).sum()
    y.backward()
    torch.testing.assert_close(z.grad, torch.sigmoid(z.detach() / 0.3))


def test_forward_bit_identical_on_the_mnist_cnn():
    from whiteboxdl.models.cnn import mnist_cnn

    torch.manual_seed(0)
    model = mnist_cnn(classes=10).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        plain = model(x)
    out, g = _grad(model, x, target=7)
    assert torch.equal(out, plain)
    with excitation_pullbacks(temperature=1e-7, maxpool_temperature=1e-7, maxpool_rule="detached"):
        cold_out = model(x.clone().requires_grad_())
    xr = x.clone().requires_grad_()
    (vanilla,) = torch.autograd.grad(model(xr)[:, 7].sum(), xr)
    assert torch.equal(cold_out, plain)
    assert (g - vanilla).norm() > 0.05 * vanilla.norm()
