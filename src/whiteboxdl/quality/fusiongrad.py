"""FusionGrad (Bykov et al. 2022): gradients averaged over noisy weights and noisy inputs.

``FusionGrad(x) = 1/(n·m) Σᵢ Σⱼ ∇ₓ f_{θ ⊙ εᵢ}(x + ξᵢⱼ)_target`` with multiplicative weight noise
``εᵢ ~ N(1, σ_w²)`` on every parameter (NoiseGrad) and additive input noise ``ξᵢⱼ ~ N(0, σ_x²)``
(SmoothGrad). The paper's settings: n = m = 10, σ_w = σ_x = 0.5 on [−1, 1] inputs, plain
gradients (no absolute value). The model's parameters are perturbed in place and restored
bit for bit afterwards, also when the call fails.

Random numbers come from torch's global generator, in this order: for each weight sample, one
draw per parameter (in ``model.parameters()`` order), then the input noise of all m samples at
once, shaped (m, N, C, H, W).

Example
-------
>>> import torch
>>> from whiteboxdl.quality.fusiongrad import fusiongrad
>>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
>>> before = net[1].weight.clone()
>>> a = fusiongrad(net, torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 0]))
>>> a.shape, torch.equal(net[1].weight, before)
(torch.Size([3, 1, 2, 2]), True)
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn


@contextlib.contextmanager
def noisy_weights(model: nn.Module, std: float) -> Iterator[nn.Module]:
    """Multiply every parameter by ``N(1, std²)`` noise inside the block; restore afterwards."""
    params = list(model.parameters())
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            for p in params:
                p.mul_(1.0 + std * torch.randn(p.shape, dtype=p.dtype, device=p.device))
        yield model
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


def _input_gradients(model: nn.Module, x: Tensor, target: Tensor, max_batch: int) -> Tensor:
    """∇ₓ of the target logits of a batch of inputs, ``max_batch`` images per backward."""
    out = torch.empty_like(x)
    for i in range(0, x.shape[0], max_batch):
        xi = x[i:i + max_batch].detach().requires_grad_(True)
        with torch.enable_grad():
            logits = model(xi)
            (g,) = torch.autograd.grad(logits.gather(1, target[i:i + max_batch, None]).sum(), xi)
        out[i:i + max_batch] = g
    return out


def fusiongrad(model: nn.Module, x: Tensor, target: Tensor, *, weight_samples: int = 10,
               input_samples: int = 10, weight_std: float = 0.5, input_std: float = 0.5,
               max_batch: int = 32) -> Tensor:
    """FusionGrad attributions (shaped like ``x``) of ``target`` (N,) class logits."""
    if weight_samples < 1 or input_samples < 1:
        raise ValueError(f"need at least one weight and one input sample, got "
                         f"{weight_samples} and {input_samples}")
    if weight_std < 0 or input_std < 0:
        raise ValueError(f"noise levels must be >= 0, got {weight_std} and {input_std}")
    n, m = x.shape[0], input_samples
    total = torch.zeros_like(x, dtype=torch.float64)
    targets = target.repeat(m)
    for _ in range(weight_samples):
        with noisy_weights(model, weight_std):
            noisy = x[None] + input_std * torch.randn(m, *x.shape, dtype=x.dtype)
            grads = _input_gradients(model, noisy.reshape(m * n, *x.shape[1:]), targets,
                                     max_batch)
        total += grads.view(m, *x.shape).double().sum(0)
    return (total / (weight_samples * m)).to(x.dtype)
