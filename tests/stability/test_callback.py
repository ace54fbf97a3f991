"""The tracker inside the shared training loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whiteboxdl.models.checkpoint import tiny_mlp
from whiteboxdl.models.training import TrainConfig, fit
from whiteboxdl.stability.callback import StabilityTracker, checkpoint_path
from whiteboxdl.stability.patterns import record_patterns
from whiteboxdl.stability.store import PatternStore


def _data(n=100):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    return torch.randn(n, 4, generator=g) + y[:, None].float(), y


def test_records_at_interval_and_final(tmp_path):
    x, y = _data()
    torch.manual_seed(0)
    model = tiny_mlp(4, 2, hidden=6)
    tracker = StabilityTracker(x[:20], every=3, out_dir=tmp_path, checkpoint_every=6)
    # 100 samples / batch 20 = 5 steps per epoch, 2 epochs = 10 steps
    fit(model, (x, y), TrainConfig(epochs=2, batch_size=20, lr=1e-2), callbacks=[tracker],
        progress=False)
    store = PatternStore.load(tmp_path / "patterns.npz")
    assert store.steps == [0, 3, 6, 9, 10]
    kept = sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "checkpoints").glob("*.pt"))
    assert kept == [0, 6, 10]
    final = record_patterns(model, x[:20], margins=True)
    np.testing.assert_array_equal(store.pattern(-1, "1"), final.values["1"])
    np.testing.assert_array_equal(store.margins["1"], final.margins["1"])
    # weight change between the kept checkpoints 0 and 6 is not stored (3 lies between), but
    # the final snapshot's change is relative to step 9: check step 6 -> 10 bounds it loosely
    assert store.weight_change[0] == {}
    assert set(store.weight_change[1]) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_weight_change_is_relative_norm(tmp_path):
    x, y = _data()
    torch.manual_seed(0)
    model = tiny_mlp(4, 2, hidden=6)
    tracker = StabilityTracker(x[:10], every=2, out_dir=tmp_path)
    fit(model, (x, y), TrainConfig(epochs=1, batch_size=20, lr=1e-2), callbacks=[tracker],
        progress=False)
    store = tracker.store
    assert store.steps == [0, 2, 4, 5]
    for i in range(1, len(store)):
        a = torch.load(checkpoint_path(tmp_path, store.steps[i - 1]), weights_only=True)
        b = torch.load(checkpoint_path(tmp_path, store.steps[i]), weights_only=True)
        for name, value in store.weight_change[i].items():
            assert value == pytest.approx(float((b[name] - a[name]).norm() / a[name].norm()),
                                          rel=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        StabilityTracker(torch.randn(3, 4), every=0)
    with pytest.raises(ValueError, match="multiple"):
        StabilityTracker(torch.randn(3, 4), every=4, checkpoint_every=6)
    with pytest.raises(ValueError, match="probe"):
        StabilityTracker(torch.full((3, 4), float("nan")))
