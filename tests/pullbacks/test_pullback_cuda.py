"""On a CUDA device the backward rules give what they give on the CPU, forwards stay bit-identical.

Float64 on both devices, so the CPU result is an independent reference to ~1e-12. Skipped where
no CUDA device is present (CI has none); on a GPU machine run
``pytest tests/pullbacks/test_pullback_cuda.py``.
"""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torchvision
from torch import nn

from whiteboxdl.models.cnn import mnist_cnn
from whiteboxdl.pullbacks import PullbackAscent, excitation_pullbacks, soft_max_pool
from whiteboxdl.pullbacks.mode import ALL_RULES
from whiteboxdl.semantic.network import semantic_mnist

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = "cuda"
TIGHT = dict(rtol=1e-9, atol=1e-12)


@pytest.fixture(autouse=True)
def _deterministic_cudnn():
    before = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before


def _input_grad(model, x, target, pullback: bool = True, **rules):
    x = x.clone().requires_grad_()
    with excitation_pullbacks(**rules) if pullback else torch.enable_grad():
        out = model(x)
        (grad,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), x)
    return grad


def _on_both(model, x):
    """(cpu model, cpu x), (cuda model, cuda x) with identical float64 weights."""
    model = model.eval().double()
    return (model, x.double()), (copy.deepcopy(model).to(CUDA), x.double().to(CUDA))


@pytest.mark.parametrize("name", ["resnet50", "vgg11_bn", "densenet121"])
def test_forward_bit_identical_on_cuda(name):
    model = getattr(torchvision.models, name)().eval().to(CUDA)
    x = (torch.rand(2, 3, 64, 64) * 2 - 1).to(CUDA).requires_grad_()
    with torch.enable_grad():
        plain = model(x)
    with excitation_pullbacks():
        pulled = model(x)
    assert torch.equal(plain, pulled)


@pytest.mark.parametrize("name", ["resnet18", "vgg11_bn", "densenet121"])
def test_pullback_on_cuda_matches_cpu(name):
    (cpu_model, cpu_x), (gpu_model, gpu_x) = _on_both(getattr(torchvision.models, name)(),
                                                      torch.rand(2, 3, 64, 64) * 2 - 1)
    target = torch.tensor([3, 7])
    cpu = _input_grad(cpu_model, cpu_x, target)
    gpu = _input_grad(gpu_model, gpu_x, target.to(CUDA))
    torch.testing.assert_close(gpu.cpu(), cpu, **TIGHT)
    vanilla = _input_grad(gpu_model, gpu_x, target.to(CUDA), pullback=False)
    assert (vanilla - gpu).abs().max() > 1e-3 * gpu.abs().max()      # the rules did act on CUDA


@pytest.mark.parametrize("n, kernel, stride, padding, dilation, ceil_mode", [
    (1, 3, 2, 1, 1, True), (2, 3, 2, 1, 1, False), (2, (2, 3), (1, 2), (1, 0), (2, 1), True),
    (3, 2, 2, 0, 1, True)])
def test_soft_max_pool_on_cuda_matches_cpu(n, kernel, stride, padding, dilation, ceil_mode):
    x = torch.randn(2, 3, *([9] * n), dtype=torch.float64)
    grad_out = None
    results = []
    for device, rule in itertools.product(("cpu", CUDA), ("smoothmax", "detached")):
        xd = x.to(device).requires_grad_()
        out = soft_max_pool(xd, kernel, stride, padding, dilation, ceil_mode, rule=rule)
        if grad_out is None:
            grad_out = torch.randn(out.shape, dtype=torch.float64)
        (g,) = torch.autograd.grad(out, xd, grad_out.to(device))
        results.append((device, rule, out.cpu(), g.cpu()))
    for rule in ("smoothmax", "detached"):
        (_, _, out_cpu, g_cpu), (_, _, out_gpu, g_gpu) = [r for r in results if r[1] == rule]
        assert torch.equal(out_cpu, out_gpu)
        torch.testing.assert_close(g_gpu, g_cpu, **TIGHT)


def test_ascent_on_cuda_matches_cpu():
    (cpu_model, cpu_x), (gpu_model, gpu_x) = _on_both(mnist_cnn(), torch.rand(4, 1, 28, 28))
    target = [1, 3, 5, 7]
    cpu = PullbackAscent(cpu_model, steps=3, alpha=2.0, bounds=(0, 1)).ascend(cpu_x, target)
    gpu = PullbackAscent(gpu_model, steps=3, alpha=2.0, bounds=(0, 1)).ascend(gpu_x, target)
    torch.testing.assert_close(gpu.difference.cpu(), cpu.difference, **TIGHT)
    torch.testing.assert_close(gpu.target_logits.cpu(), cpu.target_logits, **TIGHT)


def test_transformer_rules_on_cuda_match_cpu():
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, activation="gelu",
                                       batch_first=True)
    model = nn.Sequential(layer, nn.Flatten(), nn.Linear(5 * 16, 4))
    (cpu_model, cpu_x), (gpu_model, gpu_x) = _on_both(model, torch.randn(3, 5, 16))
    target = torch.tensor([0, 2, 3])
    cpu = _input_grad(cpu_model, cpu_x, target, rules=ALL_RULES)
    gpu = _input_grad(gpu_model, gpu_x, target.to(CUDA), rules=ALL_RULES)
    torch.testing.assert_close(gpu.cpu(), cpu, **TIGHT)


def test_semantic_network_on_cuda_matches_cpu():
    (cpu_model, cpu_x), (gpu_model, gpu_x) = _on_both(semantic_mnist(), torch.rand(4, 1, 28, 28))
    with torch.no_grad():
        torch.testing.assert_close(gpu_model(gpu_x).cpu(), cpu_model(cpu_x), **TIGHT)
