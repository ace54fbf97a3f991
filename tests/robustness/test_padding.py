"""Dummy logits make DLR losses defined without changing predictions or real-logit gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from whiteboxdl.robustness.padding import DUMMY_LOGIT, PaddedLogits, pad_logits


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))


def test_padding_keeps_predictions_and_real_logits():
    model = _model()
    padded = PaddedLogits(model, n_real=2)
    x = torch.rand(64, 1, 4, 4)
    out = padded(x)
    assert out.shape == (64, 4)
    assert torch.equal(out[:, :2], model(x))
    assert torch.all(out[:, 2:] == DUMMY_LOGIT)
    assert torch.equal(out.argmax(1), model(x).argmax(1))
    # softmax mass and cross-entropy are unchanged bit for bit
    y = torch.randint(0, 2, (64,))
    assert torch.equal(F.cross_entropy(out, y, reduction="none"),
                       F.cross_entropy(model(x), y, reduction="none"))


def test_padding_keeps_input_gradients_of_real_logits():
    model = _model()
    padded = PaddedLogits(model, n_real=2)
    x = torch.rand(8, 1, 4, 4, requires_grad=True)
    weights = torch.randn(8, 2)
    (g_plain,) = torch.autograd.grad((model(x) * weights).sum(), x)
    (g_padded,) = torch.autograd.grad((padded(x)[:, :2] * weights).sum(), x)
    assert torch.equal(g_plain, g_padded)
    # the dummy logits carry no gradient at all
    (g_dummy,) = torch.autograd.grad(padded(x)[:, 2:].sum(), x, allow_unused=True)
    assert g_dummy is None or not g_dummy.any()


def test_dlr_losses_become_defined():
    """Targeted DLR needs the 3rd and 4th largest logits: finite only after padding."""
    padded = PaddedLogits(_model(), n_real=2)
    z = padded(torch.rand(16, 1, 4, 4))
    z_sorted = z.sort(dim=1)[0]
    denominator = z_sorted[:, -1] - 0.5 * (z_sorted[:, -3] + z_sorted[:, -4])
    assert torch.isfinite(denominator).all() and (denominator > 0).all()


def test_padding_refuses_to_change_predictions():
    class Low(nn.Module):
        def forward(self, x):
            return torch.full((len(x), 2), -2e4)

    try:
        PaddedLogits(Low(), n_real=2)(torch.rand(2, 3))
    except ValueError as exc:
        assert "dummy logit" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_models_with_enough_classes_are_not_wrapped():
    model = nn.Linear(3, 10)
    assert pad_logits(model, 10) is model
    assert isinstance(pad_logits(model, 3), PaddedLogits)
