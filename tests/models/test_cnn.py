"""The project's small MNIST CNN: architecture, augmentation, seeded training, cache, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from whiteboxdl.cli import main
from whiteboxdl.models.checkpoint import load_model
from whiteboxdl.models.cnn import (
    cnn_dir,
    count_parameters,
    get_cnn,
    load_cnn_data,
    mnist_cnn,
    random_shift,
    train_cnn,
)
from whiteboxdl.models.training import TrainConfig


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WHITEBOXDL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _expected_parameters(classes: int, w: int = 16) -> int:
    convs = 1 * w * 9 + w * 2 * w * 9 + 2 * w * 4 * w * 9  # bias-free 3x3 convolutions
    norms = 2 * (w + 2 * w + 4 * w)                         # BatchNorm weight and bias
    head = (4 * w * 3 * 3) * 128 + 128 + 128 * classes + classes
    return convs + norms + head


@pytest.mark.parametrize("classes", [10, 2])
def test_shapes_and_parameter_count(classes):
    model = mnist_cnn(classes).eval()
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, classes)
    assert count_parameters(model) == _expected_parameters(classes)
    assert count_parameters(mnist_cnn(10)) == 98_554 and count_parameters(mnist_cnn(2)) == 97_522
    kinds = {type(m) for m in model.modules()}
    assert {nn.ReLU, nn.BatchNorm2d, nn.MaxPool2d} <= kinds


def test_bad_arguments():
    with pytest.raises(ValueError, match="classes"):
        mnist_cnn(1)
    with pytest.raises(ValueError, match="dataset"):
        cnn_dir("cifar10")
    with pytest.raises(ValueError, match="digits"):
        cnn_dir("mnist", (3, 3))
    with pytest.raises(ValueError, match="digits"):
        cnn_dir("mnist", (3, 12))


def test_random_shift_is_a_zero_filled_translation():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28) + 0.1
    out = random_shift(x, g, max_shift=2)
    seen = set()
    for image, shifted in zip(x, out):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = torch.zeros_like(image)
                ys, yd = ((slice(0, 28 - dy), slice(dy, 28)) if dy >= 0
                          else (slice(-dy, 28), slice(0, 28 + dy)))
                xs, xd = ((slice(0, 28 - dx), slice(dx, 28)) if dx >= 0
                          else (slice(-dx, 28), slice(0, 28 + dx)))
                ref[:, yd, xd] = image[:, ys, xs]
                if torch.equal(ref, shifted):
                    matches.append((dy, dx))
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 10  # shifts differ between images


def test_digit_subset_data(needs_mnist):
    x, y = load_cnn_data("mnist", (3, 5), "test")
    assert len(y) == 1902 and set(y.tolist()) == {0, 1}
    assert cnn_dir("mnist", (3, 5)).name == "mnist-35-cnn"


def _subset(n_train: int, n_test: int = 500):
    x, y = load_cnn_data("mnist", None, "train")
    xt, yt = load_cnn_data("mnist", None, "test")
    return (x[:n_train], y[:n_train]), (xt[:n_test], yt[:n_test])


def test_short_training_on_real_mnist_learns(needs_mnist, tmp_path):
    train, test = _subset(2000)
    config = TrainConfig(epochs=2, batch_size=32, lr=2e-3, weight_decay=0.0, seed=5)
    model, summary = train_cnn(train_data=train, test_data=test, config=config, progress=False,
                               augment=False, out=tmp_path / "run")
    assert summary["test_acc"] > 0.90, summary["history"]
    assert summary["parameters"] == 98_554 and summary["train_size"] == 2000
    reloaded = load_model(tmp_path / "run" / "model.pt")  # the model file rebuilds the network
    x = test[0][:16]
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))


def test_seeded_training_is_deterministic(needs_mnist):
    train, test = _subset(256, 100)
    config = TrainConfig(epochs=1, batch_size=32, lr=2e-3, weight_decay=0.0, seed=11)
    (m1, s1), (m2, s2) = [train_cnn(train_data=train, test_data=test, config=config,
                                    progress=False) for _ in range(2)]
    for key, value in m1.state_dict().items():
        assert torch.equal(value, m2.state_dict()[key]), key
    assert s1["history"][0]["train_loss"] == s2["history"][0]["train_loss"]
    m3, _ = train_cnn(train_data=train, test_data=test, progress=False,
                      config=TrainConfig(**{**config.__dict__, "seed": 12}))
    assert not torch.equal(m3[0].weight, m1[0].weight)  # the seed matters


def test_get_cnn_uses_the_cache_and_never_trains_when_told(needs_mnist, cache):
    with pytest.raises(FileNotFoundError, match="whiteboxdl train cnn --dataset mnist --digits 3 5"):
        get_cnn("mnist", digits=(3, 5), train_if_missing=False)
    x, y = load_cnn_data("mnist", (3, 5), "train")
    xt, yt = load_cnn_data("mnist", (3, 5), "test")
    model, summary = train_cnn("mnist", (3, 5), epochs=1, progress=False,
                               train_data=(x[:300], y[:300]), test_data=(xt[:200], yt[:200]),
                               out=cnn_dir("mnist", (3, 5)))
    assert summary["classes"] == 2 and summary["parameters"] == 97_522
    assert str(cache) in summary["out_dir"]
    cached = get_cnn("mnist", digits=(3, 5), train_if_missing=False)
    assert not cached.training
    with torch.no_grad():
        assert torch.equal(cached(xt[:8]), model(xt[:8]))


def test_cli_train_cnn(needs_mnist, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["train", "cnn", "--digits", "3", "5", "--epochs", "1", "--limit", "300",
                 "--seed", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["builder_kwargs"] == {"classes": 2} and summary["config"]["seed"] == 2
    assert f"{summary['final']['test_acc']:.2%}" in printed and "97,522" in printed
    assert not (out / "checkpoint.pt").exists()
    assert main(["train", "cnn", "--limit", "10"]) == 2  # partial model must not replace the cache



def test_dataset_recipes_set_epochs_and_augmentation():
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(40, 1, 28, 28, generator=g), torch.randint(0, 10, (40,), generator=g))
    _, fashion = train_cnn("fashion-mnist", train_data=data, test_data=data, progress=False)
    assert fashion["epochs"] == 6 and len(fashion["history"]) == 6 and fashion["augment"] is False
    _, mnist = train_cnn("mnist", epochs=1, train_data=data, test_data=data, progress=False)
    assert mnist["epochs"] == 1 and mnist["augment"] is True


def test_cli_resume_refuses_another_run_with_one_line(needs_mnist, tmp_path, capsys):
    """``train cnn --limit 256 --out D`` interrupted, then resumed with another --limit,
    --dataset or --digits: refused with one line (exit 2); the same command resumes."""
    out = tmp_path / "D"

    class StopInSecondEpoch:
        def on_epoch_end(self, epoch, model, metrics):
            if epoch == 1:
                raise KeyboardInterrupt

    x, y = load_cnn_data("mnist", None, "train")
    with pytest.raises(KeyboardInterrupt):  # what `train cnn --epochs 2 --limit 256` runs
        train_cnn("mnist", epochs=2, out=out, progress=False, train_data=(x[:256], y[:256]),
                  callbacks=[StopInSecondEpoch()])
    stored = (out / "checkpoint.pt").read_bytes()
    argv = ["train", "cnn", "--epochs", "2", "--out", str(out), "--no-progress"]
    capsys.readouterr()
    for change, expected in ((["--limit", "128"], "training data: 256 → 128 images"),
                             (["--limit", "256", "--dataset", "fashion-mnist"],
                              "training data: other images (the same number, 256)"),
                             (["--limit", "256", "--digits", "3", "5"],
                              "model: whiteboxdl.models.cnn:mnist_cnn {'classes': 10} → ")):
        assert main(argv + change) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "belongs to another training run" in err
        assert expected in err and "use another --out, or delete" in err
        assert (out / "checkpoint.pt").read_bytes() == stored
    assert main(argv + ["--limit", "256"]) == 0                    # the same run resumes
    summary = json.loads((out / "summary.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert not (out / "checkpoint.pt").exists()
