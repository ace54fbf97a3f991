"""Figures and the ``whiteboxdl semantic`` commands."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from whiteboxdl.cli import main
from whiteboxdl.models.checkpoint import load_model, save_model
from whiteboxdl.semantic.inspect import inspect_model, pick_samples
from whiteboxdl.semantic.network import semantic_mnist

ALL_FIGURES = {"two_step.png", "conv_kernels.png", "affine_features.png", "affine_poses.png",
               "logical_weights.png", "learning_curves.png", "processing_steps.png"}


def test_pick_samples_puts_misclassified_last():
    torch.manual_seed(0)
    model = semantic_mnist().eval()
    x = torch.rand(10, 1, 28, 28)
    with torch.no_grad():
        pred = model(x).argmax(1)
    y = pred.clone()
    y[[2, 7]] = 1 - y[[2, 7]]
    xs, ys = pick_samples(model, x, y, n=5, n_wrong=4)
    assert len(xs) == 5
    assert torch.equal(xs[-2:], x[[2, 7]]) and torch.equal(xs[:3], x[[0, 1, 3]])


def test_inspect_model_writes_every_figure(tmp_path):
    torch.manual_seed(0)
    model = semantic_mnist((3, 5))
    history = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.9, "test_acc": 0.95,
                "test_loss": 0.5, "apgd10_acc": 0.8} for e in (1, 2, 3)]
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 0, 1, 0, 1])
    paths = inspect_model(model, tmp_path, x, y, history, n_samples=4)
    assert {p.name for p in paths} == ALL_FIGURES | {"report.html"}
    for name in ALL_FIGURES:
        width, height = Image.open(tmp_path / name).size
        assert width > 300 and height > 200, name
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64") == len(ALL_FIGURES)


def test_inspect_skips_absent_layers(tmp_path):
    paths = inspect_model(semantic_mnist(range(4), two_step=False, conv=False), tmp_path,
                          n_samples=0)
    assert {p.name for p in paths} == {"affine_features.png", "affine_poses.png",
                                       "logical_weights.png", "report.html"}


@pytest.mark.usefixtures("needs_mnist")
def test_cli_train_then_inspect(tmp_path):
    out = tmp_path / "run"
    assert main(["semantic", "train", "--digits", "3", "5", "--epochs", "2", "--limit", "400",
                 "--adv-check", "20", "--no-two-step", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert {"test_acc", "apgd10_acc", "train_loss"} <= set(summary["history"][0])
    model = load_model(out / "model.pt")
    assert model.two_step is None and model.conv is not None and model.class_names == ("3", "5")
    figures = tmp_path / "fig"
    assert main(["semantic", "inspect", str(out / "model.pt"), "--out", str(figures),
                 "--samples", "3"]) == 0
    assert (figures / "processing_steps.png").is_file() and (figures / "report.html").is_file()
    assert not (figures / "two_step.png").exists()


def test_cli_inspect_rejects_other_models(tmp_path, capsys):
    from whiteboxdl.models.checkpoint import tiny_mlp

    save_model(tmp_path / "m.pt", tiny_mlp(), "whiteboxdl.models.checkpoint:tiny_mlp", {})
    assert main(["semantic", "inspect", str(tmp_path / "m.pt")]) == 2
    assert "not a semantic network" in capsys.readouterr().err


def test_shown_classes_always_include_the_true_label():
    from whiteboxdl.semantic.inspect import _shown_classes

    probs = torch.tensor([0.05, 0.5, 0.2, 0.15, 0.1])
    assert _shown_classes(probs, 1, 5) == [1, 2, 3]
    assert _shown_classes(probs, 0, 5) == [1, 2, 0]
    assert _shown_classes(probs[:3], 0, 3) == [0, 1, 2]


def test_cli_pose_convention_choices_are_the_samplers():
    import argparse

    from whiteboxdl.semantic import cli
    from whiteboxdl.semantic.samplers import POSE_CONVENTIONS

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    train = parser._subparsers._group_actions[0].choices["semantic"]._subparsers \
        ._group_actions[0].choices["train"]
    option = next(a for a in train._actions if "--pose-convention" in a.option_strings)
    assert tuple(option.choices) == POSE_CONVENTIONS and option.default == POSE_CONVENTIONS[0]


@pytest.mark.usefixtures("needs_mnist")
def test_cli_trains_a_tiny_ten_digit_model_with_a_named_arch_on_a_validation_split(tmp_path):
    out = tmp_path / "ten"
    assert main(["semantic", "train", "--digits", *map(str, range(10)), "--arch", "margin",
                 "--affine-poses", "4", "--noise-kind", "sign", "--noise-mean", "0",
                 "--noise-std", "0.3", "--epochs", "1", "--batch-size", "50", "--limit", "200",
                 "--validation", "300", "--adv-check", "20", "--threads", "1",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    first = summary["history"][0]
    assert {"val_acc", "val_loss", "val_apgd10_acc"} <= set(first)
    assert not any(k.startswith("test_") for k in first), "the test set must not be read"
    assert summary["builder_kwargs"]["arch"] == "margin"
    assert summary["builder_kwargs"]["affine_poses"] == 4
    model = load_model(out / "model.pt")
    assert model.n_classes == 10 and model.class_names == tuple(map(str, range(10)))
    assert model.two_step.margin == 0.15 and 0.35 <= model.two_step.t[0] <= 0.49
    assert model.affine.n_poses == 4
    figures = tmp_path / "fig"
    assert main(["semantic", "inspect", str(out / "model.pt"), "--out", str(figures),
                 "--samples", "2"]) == 0
    assert (figures / "processing_steps.png").is_file()


def test_cli_design_choices_are_the_builder_s():
    import argparse

    from whiteboxdl.semantic import cli
    from whiteboxdl.semantic.layers import CONV_CHANNELS
    from whiteboxdl.semantic.network import ARCHS, LOGICAL, SIZE_BOUNDS
    from whiteboxdl.semantic.train import NOISE_KINDS

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    train = parser._subparsers._group_actions[0].choices["semantic"]._subparsers \
        ._group_actions[0].choices["train"]
    options = {a.dest: a for a in train._actions}
    assert list(options["arch"].choices) == list(ARCHS)
    assert tuple(options["conv_channels"].choices) == CONV_CHANNELS
    assert tuple(options["logical"].choices) == LOGICAL
    assert tuple(options["noise_kind"].choices) == NOISE_KINDS
    sizes = {flag[2:].replace("-", "_"): kind for flag, kind, *_ in cli.SIZE_OPTIONS}
    assert set(sizes) | {"conv_channels", "logical"} == set(SIZE_BOUNDS)
    assert all(SIZE_BOUNDS[name][0] is kind for name, kind in sizes.items())
