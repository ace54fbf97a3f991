"""Training recipe pieces: augmentation statistics, determinism, APGD metric, model cache."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from whiteboxdl.models.training import TrainConfig, fit
from whiteboxdl.semantic.network import semantic_mnist
from whiteboxdl.semantic.train import apgd_accuracy, get_semantic_model, noise_augment


def test_noise_augment_probability_and_noise_statistics():
    g = torch.Generator().manual_seed(0)
    batch = torch.full((1, 1, 4, 4), 0.5)
    changed = sum(not torch.equal(noise_augment(batch, g), batch) for _ in range(2000))
    assert 0.67 < changed / 2000 < 0.73
    out = noise_augment(torch.full((20000, 1, 2, 2), 0.5), g, p=1.0)
    assert out.min() >= 0 and out.max() <= 1
    noise = (out - 0.5).flatten()
    # clipping at +-0.5 does not move the median or the quartiles of N(0.05, 0.25^2)
    q = torch.quantile(noise[:100000], torch.tensor([0.25, 0.5, 0.75]))
    assert q.tolist() == pytest.approx([0.05 - 0.6745 * 0.25, 0.05, 0.05 + 0.6745 * 0.25], abs=0.01)


def _tiny_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.3
    y = torch.randint(0, 2, (n,), generator=g)
    x[y == 1, :, 10:18, 10:18] += 0.6
    return x.clamp(0, 1), y


def test_seeded_short_training_is_deterministic_and_keeps_constraints():
    data = _tiny_data()
    config = TrainConfig(epochs=1, batch_size=32, lr=3e-2, seed=11)
    params = []
    for seed in (11, 11, 12):
        torch.manual_seed(0)
        model = semantic_mnist((3, 5))
        fit(model, data, TrainConfig(**{**config.__dict__, "seed": seed}), augment=noise_augment,
            progress=False)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        ts = model.two_step
        assert 0.01 <= ts.t[0] <= 0.49 and 0.51 <= ts.t[1] <= 0.99
        assert ts.a.min() >= 0.01 and ts.a.max() <= 0.99 and ts.scales.min() >= 0.001
        torch.testing.assert_close(model.conv.kernels.flatten(1).norm(dim=1), torch.ones(2))
        torch.testing.assert_close(model.affine.features.flatten(1).norm(dim=1), torch.ones(8))
    assert torch.equal(params[0], params[1])
    assert not torch.equal(params[0], params[2])
    assert not torch.equal(params[0], torch.cat([p.detach().flatten()
                                                 for p in semantic_mnist().parameters()]))


class _Linear(nn.Module):
    """logits = [0, w.x + b] on (B, 1, 2, 2) inputs."""

    def __init__(self):
        super().__init__()
        self.w = torch.tensor([1.0, -2.0, 0.5, 0.5])
        self.b = -0.1

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(s), s], dim=1)


def test_apgd_accuracy_matches_the_exact_linear_margin():
    # inputs in [0.3, 0.7] and eps 0.03 keep the box inactive: robust iff |w.x+b| > eps*||w||_1
    g = torch.Generator().manual_seed(1)
    x = 0.3 + 0.4 * torch.rand(400, 1, 2, 2, generator=g)
    model = _Linear()
    score = x.flatten(1) @ model.w + model.b
    y = (score > 0).long()
    y[:40] = 1 - y[:40]  # some misclassified: never robust
    correct = (score > 0).long() == y
    exact = (correct & (score.abs() > 0.03 * model.w.abs().sum())).float().mean().item()
    assert 0.2 < exact < 0.8
    assert apgd_accuracy(model, x, y, steps=10, eps=0.03) == pytest.approx(exact, abs=1e-6)


def test_get_semantic_model_without_training_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("WHITEBOXDL_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="whiteboxdl semantic train"):
        get_semantic_model((3, 5), train_if_missing=False)
