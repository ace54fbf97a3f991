"""Counterfactual grids and the `whiteboxdl explain` command on small real models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from whiteboxdl.cli import main
from whiteboxdl.models.checkpoint import save_model
from whiteboxdl.models.cnn import mnist_cnn
from whiteboxdl.pullbacks import GradientAscent, PullbackAscent
from whiteboxdl.pullbacks.grids import compute_grid, explanation_figure, grid_columns
from whiteboxdl.viz.grids import minmax_per_cell


def _cnn():
    torch.manual_seed(0)
    return mnist_cnn(classes=10, width=2).eval()


def test_grid_columns_put_labels_first_then_unused_random_classes():
    cols = grid_columns([4, 2, 4, 7], num_classes=10, extra=2, seed=3)
    assert cols[:3] == [4, 2, 7] and len(cols) == 5
    assert not set(cols[3:]) & {4, 2, 7} and len(set(cols)) == 5
    assert grid_columns([4, 2], 10, 1, seed=3) == grid_columns([4, 2], 10, 1, seed=3)
    with pytest.raises(ValueError, match="extra"):
        grid_columns([0, 1], num_classes=3, extra=2)


def test_minmax_is_per_cell():
    diff = torch.randn(2, 3, 1, 5, 5) * torch.arange(1, 7.0).view(2, 3, 1, 1, 1)
    cells = minmax_per_cell(diff)
    assert cells.shape == (2, 3, 5, 5, 1)
    np.testing.assert_allclose(cells.reshape(6, -1).min(1), 0, atol=1e-7)
    np.testing.assert_allclose(cells.reshape(6, -1).max(1), 1, atol=1e-6)
    d = diff[1, 2].flatten()
    np.testing.assert_allclose(cells[1, 2].ravel(), ((d - d.min()) / (d.max() - d.min())).numpy(),
                               rtol=1e-6)


def test_grid_cells_are_the_ascents_towards_each_column(tmp_path):
    model, x = _cnn(), torch.rand(2, 1, 28, 28)
    kwargs = dict(steps=2, alpha=1.0, bounds=(0.0, 1.0))
    png, (pull, grad) = explanation_figure(model, x, [3, 5], tmp_path / "g.png", num_classes=10,
                                           method="both", progress=False, **kwargs)
    assert pull.columns[:2] == [3, 5] and pull.columns == grad.columns
    for j, c in enumerate(pull.columns):
        torch.testing.assert_close(pull.differences[:, j],
                                   PullbackAscent(model, **kwargs).attribute(x, target=c))
        torch.testing.assert_close(grad.differences[:, j],
                                   GradientAscent(model, **kwargs).attribute(x, target=c))
    assert not torch.allclose(pull.differences, grad.differences)
    with Image.open(png) as img:
        assert img.width > 2 * img.height    # two grids side by side
    with pytest.raises(ValueError, match="method"):
        compute_grid(model, x, [1], method="lrp")


def test_explain_cli_with_a_model_file(tmp_path, capsys):
    model = _cnn()
    path = tmp_path / "cnn.pt"
    save_model(path, model, "whiteboxdl.models.cnn:mnist_cnn", {"classes": 10, "width": 2})
    img = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "fig.png"
    rc = main(["explain", str(img), str(img), "--model", str(path), "--targets", "1", "4",
               "--method", "pullback", "--steps", "1", "--out", str(out), "--no-progress"])
    assert rc == 0 and out.is_file()
    x = torch.from_numpy(np.asarray(Image.open(img), dtype=np.float32) / 255)[None, None]
    pred = int(model(x).argmax())
    assert f"predicted {pred}" in capsys.readouterr().out
    assert main(["explain", str(img), "--model", str(path), "--targets", "12",
                 "--out", str(out)]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "missing.png"), "--model", str(path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["explain", str(img), "--model", str(path), "--temperature", "0"]) == 2
    assert "temperature" in capsys.readouterr().err


def test_explain_loads_imagenet_models_for_signed_inputs():
    from whiteboxdl.data.imagenet import SignedImageNetInput
    from whiteboxdl.pullbacks.cli import load_explained_model, load_images

    loaded = load_explained_model("resnet18", weights="random")
    assert isinstance(loaded.model, SignedImageNetInput) and not loaded.model.training
    assert loaded.contract.bounds == (-1.0, 1.0) and loaded.contract.channels == 3
    assert loaded.contract.class_names[207] == "golden retriever"
    x = load_images(["cat"], loaded)                  # a bundled example, by name
    assert x.shape == (1, 3, 224, 224) and x.min() >= -1 and x.max() <= 1
    with pytest.raises(ValueError, match="unknown model.*did you mean resnet50"):
        load_explained_model("resnet5O", weights="random")


def test_explain_cli_reads_a_labelled_folder(tmp_path, capsys):
    model = _cnn()
    path = tmp_path / "cnn.pt"
    save_model(path, model, "whiteboxdl.models.cnn:mnist_cnn", {"classes": 10, "width": 2})
    rng = np.random.default_rng(1)
    rows = ["file,class_index"]
    for k in range(3):
        Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(tmp_path / f"{k}.png")
        rows.append(f"{k}.png,{k + 4}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "fig.png"
    rc = main(["explain", f"csv:{tmp_path}", "--limit", "2", "--model", str(path),
               "--method", "pullback", "--steps", "1", "--out", str(out), "--no-progress"])
    assert rc == 0 and out.is_file()
    printed = capsys.readouterr().out
    assert "0.png: predicted" in printed and ", label 4" in printed and ", label 5" in printed
    assert "2.png" not in printed                                   # --limit 2
    assert main(["explain", f"csv:{tmp_path}", "--limit", "0", "--model", str(path)]) == 2
    assert "--limit" in capsys.readouterr().err


def test_explain_cli_defaults_to_pretrained_efficientnet_lite0_offline(tmp_path, capsys,
                                                                       monkeypatch):
    """`whiteboxdl explain cat coffee` with nothing else: EfficientNet-Lite0 with its bundled
    weights, no network, the photos' classes as columns, each photo's top-5 printed."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    out = tmp_path / "grid.png"
    assert main(["explain", "cat", "coffee", "--steps", "1", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    cat, coffee = (next(line for line in printed if line.startswith(f"{name}:"))
                   for name in ("cat", "coffee"))
    assert cat.startswith("cat: predicted 282 (tiger cat); top-5: 282 tiger cat ")
    assert coffee.startswith("coffee: predicted 967 (espresso); top-5: 967 espresso ")
    assert cat.count("%") == 5
    with Image.open(out) as img:           # pullback and gradient grids, 2 rows x (1 + 3) cells
        assert img.width > 2.5 * img.height
