"""The shared training loop: determinism, constraints, resume, checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from whiteboxdl.models.checkpoint import load_model, read_model_file, save_model, tiny_mlp
from whiteboxdl.models.training import (TrainConfig, describe_run, evaluate_accuracy, fit,
                                        run_differences)

BUILDER = "whiteboxdl.models.checkpoint:tiny_mlp"


def _blobs(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) + (y.float() * 3 - 1.5).unsqueeze(1)
    return x, y


def _model(seed=1):
    torch.manual_seed(seed)
    return tiny_mlp(4, 2, hidden=8)


def _noise(batch, generator):
    return batch + 0.1 * torch.randn(batch.shape, generator=generator)


CONFIG = TrainConfig(epochs=3, batch_size=32, lr=1e-2, seed=7)


def test_learns_separable_blobs():
    data = _blobs()
    model = _model()
    result = fit(model, data, CONFIG, test=_blobs(seed=1), progress=False)
    assert result.history[-1]["test_acc"] > 0.95
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert [h["epoch"] for h in result.history] == [1, 2, 3]


def test_seeded_run_is_deterministic():
    a, b = _model(), _model()
    fit(a, _blobs(), CONFIG, augment=_noise, progress=False)
    fit(b, _blobs(), CONFIG, augment=_noise, progress=False)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = _model()
    fit(c, _blobs(), TrainConfig(**{**CONFIG.__dict__, "seed": 8}), augment=_noise, progress=False)
    assert not torch.equal(a[0].weight, c[0].weight)


class _UnitNorm(nn.Linear):
    """A layer whose rows must stay unit-norm: regularize_ renormalises them."""

    calls = 0

    def regularize_(self):
        type(self).calls += 1
        self.weight.div_(self.weight.norm(dim=1, keepdim=True))


def test_regularize_runs_after_every_step():
    layer = _UnitNorm(4, 2)
    model = nn.Sequential(layer)
    _UnitNorm.calls = 0
    fit(model, _blobs(64), TrainConfig(epochs=2, batch_size=16, lr=0.5), progress=False)
    assert _UnitNorm.calls == 2 * 4
    assert torch.allclose(layer.weight.norm(dim=1), torch.ones(2), atol=1e-6)


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    straight = _model()
    fit(straight, _blobs(), CONFIG, augment=_noise, out_dir=tmp_path / "a", progress=False)

    class Interrupt(Exception):
        pass

    class StopInSecondEpoch:
        def on_epoch_end(self, epoch, model, metrics):
            if epoch == 1:  # epoch 0 is finished and saved; epoch 1 dies before its checkpoint
                raise Interrupt

    out = tmp_path / "b"
    with pytest.raises(Interrupt):
        fit(_model(), _blobs(), CONFIG, augment=_noise, out_dir=out,
            callbacks=[StopInSecondEpoch()], progress=False)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 0
    resumed = _model(seed=99)  # different init: everything must come from the checkpoint
    result = fit(resumed, _blobs(), CONFIG, augment=_noise, out_dir=out, progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    for pa, pb in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(pa, pb)


def test_resume_refuses_a_different_config(tmp_path):
    fit(_model(), _blobs(), TrainConfig(epochs=1, batch_size=32), out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"another training run \(recipe: epochs 1 → 2, "
                                         r"batch_size 32 → 64\)"):
        fit(_model(), _blobs(), TrainConfig(epochs=2, batch_size=64), out_dir=tmp_path,
            progress=False)


class _Interrupt(Exception):
    pass


class _StopInSecondEpoch:
    def on_epoch_end(self, epoch, model, metrics):
        if epoch == 1:
            raise _Interrupt


def _interrupted(out, **kwargs):
    """A run of CONFIG into ``out`` that died in its second epoch (checkpoint of epoch 1)."""
    with pytest.raises(_Interrupt):
        fit(_model(), kwargs.pop("train", _blobs()), CONFIG, out_dir=out,
            callbacks=[_StopInSecondEpoch()], progress=False, **kwargs)
    return (out / "checkpoint.pt").read_bytes()


@pytest.mark.parametrize("change,expected", [
    (dict(train=_blobs(128)), "training data: 256 → 128 images"),
    (dict(train=_blobs(seed=5)), "training data: other images (the same number, 256)"),
    (dict(test=_blobs(64, seed=2)), "test data: none → given"),
    (dict(augment=_noise), "augmentation: None → test_training._noise"),
    (dict(builder=BUILDER, builder_kwargs={"in_features": 4, "classes": 2, "hidden": 8}),
     "model: None {} → whiteboxdl.models.checkpoint:tiny_mlp"),
    (dict(model=tiny_mlp(4, 2, hidden=16)), "model: other parameter names or shapes"),
    (dict(epoch_metrics={"zero": lambda m: 0.0}), "per-epoch metrics: [] → ['zero']"),
])
def test_resume_refuses_another_run_before_touching_the_weights(tmp_path, change, expected):
    stored = _interrupted(tmp_path)
    model = change.pop("model", _model(seed=99))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = change.pop("train", _blobs())
    with pytest.raises(ValueError, match="belongs to another training run") as info:
        fit(model, train, CONFIG, out_dir=tmp_path, progress=False, **change)
    message = str(info.value)
    assert expected in message and "use another --out, or delete" in message
    assert "\n" not in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert (tmp_path / "checkpoint.pt").read_bytes() == stored      # nothing overwritten


@pytest.mark.parametrize("how", ["truncated", "empty", "bit flip"])
def test_damaged_checkpoint_is_reported_and_training_starts_over(tmp_path, capsys, how):
    straight = _model()
    fit(straight, _blobs(), CONFIG, out_dir=tmp_path / "a", progress=False)
    out = tmp_path / "b"
    raw = _interrupted(out)
    damaged = {"truncated": raw[:len(raw) // 2], "empty": b"",
               "bit flip": raw[:len(raw) // 2] + bytes([raw[len(raw) // 2] ^ 0xFF])
               + raw[len(raw) // 2 + 1:]}[how]
    (out / "checkpoint.pt").write_bytes(damaged)
    capsys.readouterr()
    result = fit(_model(), _blobs(), CONFIG, out_dir=out, progress=False)
    err = capsys.readouterr().err
    assert "checkpoint.pt is damaged" in err and "training from the first epoch" in err
    assert (out / "checkpoint.pt.damaged").read_bytes() == damaged
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    final = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(final[k], v) for k, v in straight.state_dict().items())


def test_a_checkpoint_without_a_run_record_is_refused(tmp_path):
    _interrupted(tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del state["run"]                                   # as whiteboxdl wrote it before
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="older whiteboxdl that did not record the training data"):
        fit(_model(), _blobs(), CONFIG, out_dir=tmp_path, progress=False)


def test_describe_run_records_what_determines_the_result():
    run = describe_run(_model(), _blobs(), CONFIG, test=_blobs(64), augment=_noise,
                       epoch_metrics=["b", "a"], builder=BUILDER, builder_kwargs={"hidden": 8})
    assert run["train"]["size"] == 256 and run["train"]["shape"] == [4]
    assert run["test"]["size"] == 64 and run["epoch_metrics"] == ["a", "b"]
    assert run["config"]["seed"] == 7 and run["model"]["kwargs"] == {"hidden": 8}
    assert run == describe_run(_model(seed=5), _blobs(), CONFIG, test=_blobs(64), augment=_noise,
                               epoch_metrics=["a", "b"], builder=BUILDER,
                               builder_kwargs={"hidden": 8})   # the initial weights do not count
    assert run_differences(run, run) == []


def test_outputs_and_weights_only_checkpoint(tmp_path):
    model = _model()
    fit(model, _blobs(), CONFIG, test=_blobs(seed=3), out_dir=tmp_path, builder=BUILDER,
        builder_kwargs={"in_features": 4, "classes": 2, "hidden": 8}, progress=False)
    loaded = load_model(tmp_path / "model.pt")
    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), model(x))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final"]["test_acc"] == pytest.approx(
        evaluate_accuracy(model, *_blobs(seed=3))[1])
    assert summary["config"]["seed"] == 7


def test_model_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.pt")
    torch.save({"weight": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not a whiteboxdl model file"):
        read_model_file(tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a loadable"):
        load_model(tmp_path / "junk.pt")
    torch.save({"builder": "os:system", "kwargs": {}, "state_dict": {}}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="refusing to import builder"):
        load_model(tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="refusing to import builder"):
        save_model(tmp_path / "evil2.pt", _model(), "os:system", {})


@pytest.mark.parametrize("field,value", [("epochs", 0), ("epochs", 2.5), ("lr", 0.0),
                                         ("lr", float("nan")), ("batch_size", -1),
                                         ("batch_size", "64"), ("optimizer", "lbfgs"),
                                         ("weight_decay", -1.0),
                                         ("weight_decay", float("inf"))])
def test_bad_config(field, value):
    with pytest.raises(ValueError, match=field):
        fit(_model(), _blobs(), TrainConfig(**{field: value}), progress=False)


def test_bad_data():
    x, y = _blobs()
    with pytest.raises(ValueError, match="labels must be int64"):
        fit(_model(), (x, y.float()), CONFIG, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        fit(_model(), (x.clone().fill_(float("nan")), y), CONFIG, progress=False)
    with pytest.raises(ValueError, match="255 labels"):
        fit(_model(), (x, y[:-1]), CONFIG, progress=False)
