"""`whiteboxdl models`: which torchvision weights are cached and where missing ones go."""

from __future__ import annotations

import torch

from whiteboxdl.cli import main


def test_cli_models_table_shows_cache_state(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert main(["models", "resnet18"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert f"| resnet18 | IMAGENET1K_V1 | no | {path} |" in out and "Not cached" in out
    path.parent.mkdir(parents=True)
    torch.save({}, path)
    assert main(["models", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "| yes |" in out and "Not cached" not in out
    assert main(["models", "resnet05"]) == 2


def test_models_lists_every_family_and_what_is_usable_here(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "| efficientnet_lite0 | efficientnet_lite | yes | ImageNet weights bundled" in out
    assert "| timm:pvt_v2_b1 | timm |" in out and "| mnist-cnn | cnn |" in out
