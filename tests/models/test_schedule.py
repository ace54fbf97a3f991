"""Learning-rate schedules of the shared training loop (added for the CNN recipe)."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch

from whiteboxdl.models.checkpoint import tiny_mlp
from whiteboxdl.models.training import TrainConfig, fit, lr_at


def _blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    return torch.randn(n, 4, generator=g) + (y.float() * 2 - 1).unsqueeze(1), y


def _model(seed=1):
    torch.manual_seed(seed)
    return tiny_mlp(4, 2, hidden=8)


def test_schedule_values_analytic():
    const = TrainConfig(lr=0.1)
    assert [lr_at(const, s, 11) for s in (0, 5, 10)] == [0.1, 0.1, 0.1]
    cos = TrainConfig(lr=0.1, schedule="cosine")
    assert lr_at(cos, 0, 11) == pytest.approx(0.1)
    assert lr_at(cos, 5, 11) == pytest.approx(0.05)
    assert lr_at(cos, 10, 11) == pytest.approx(0.0, abs=1e-12)
    one = TrainConfig(lr=0.1, schedule="onecycle")
    assert lr_at(one, 0, 101) == pytest.approx(0.1 / 25)
    assert lr_at(one, 25, 101) == pytest.approx(0.1)               # peak at 25% of the steps
    assert lr_at(one, 10, 101) == pytest.approx(0.1 * (1 / 25 + (24 / 25) * 0.4))
    low = 0.1 / 1e4
    t = (70 / 100 - 0.25) / 0.75
    assert lr_at(one, 70, 101) == pytest.approx(low + (0.1 - low) * 0.5 * (1 + math.cos(math.pi * t)))
    assert lr_at(one, 100, 101) == pytest.approx(low)
    values = [lr_at(one, s, 101) for s in range(101)]
    assert values.index(max(values)) == 25
    assert all(a <= b for a, b in zip(values[:26], values[1:26]))
    assert all(a >= b for a, b in zip(values[25:], values[26:]))
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step").validate()


def test_fit_applies_the_schedule():
    config = TrainConfig(epochs=3, batch_size=50, lr=0.05, schedule="cosine", seed=3)
    result = fit(_model(), _blobs(), config, progress=False)
    total = 3 * 4
    for h in result.history:  # the lr of the last step of each epoch
        assert h["lr"] == pytest.approx(lr_at(config, h["step"] - 1, total))
    # and it changes training: a constant rate gives other weights
    a, b = _model(), _model()
    fit(a, _blobs(), config, progress=False)
    fit(b, _blobs(), TrainConfig(**{**asdict(config), "schedule": "constant"}), progress=False)
    assert not torch.equal(a[0].weight, b[0].weight)


def test_resume_continues_the_schedule(tmp_path):
    config = TrainConfig(epochs=3, batch_size=32, lr=1e-2, schedule="onecycle", seed=7)
    straight = _model()
    fit(straight, _blobs(), config, out_dir=tmp_path / "a", progress=False)

    class Interrupt(Exception):
        pass

    class StopInSecondEpoch:
        def on_epoch_end(self, epoch, model, metrics):
            if epoch == 1:
                raise Interrupt

    with pytest.raises(Interrupt):
        fit(_model(), _blobs(), config, out_dir=tmp_path / "b", callbacks=[StopInSecondEpoch()],
            progress=False)
    resumed = _model(seed=5)
    fit(resumed, _blobs(), config, out_dir=tmp_path / "b", progress=False)
    for pa, pb in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(pa, pb)


def test_checkpoint_from_before_the_schedule_field_still_resumes(tmp_path):
    """Checkpoints written without ``schedule`` in their config mean the constant schedule."""
    config = TrainConfig(epochs=2, batch_size=50, seed=1)
    first = fit(_model(), _blobs(), config, out_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    del state["config"]["schedule"]
    torch.save(state, path)
    result = fit(_model(), _blobs(), config, out_dir=tmp_path, progress=False)
    assert result.history == first.history  # resumed from the finished checkpoint, not retrained
