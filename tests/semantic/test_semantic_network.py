"""The proof-of-concept network: size, k-class generalisation, processing steps."""

from __future__ import annotations

import pytest
import torch

from whiteboxdl.semantic.network import SemanticNetwork, processing_steps, semantic_mnist


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_poc_has_4_8k_parameters_and_no_biases():
    model = semantic_mnist((3, 5))
    assert abs(_count(model) - 4800) <= 100
    assert _count(model) == 8 + 50 + 3200 + 1536 + 16
    assert not any("bias" in name for name, _ in model.named_parameters())
    assert model.class_names == ("3", "5")


def test_k_class_generalisation_sizes():
    model = semantic_mnist(range(10))
    assert model.affine.features.shape == (40, 20, 20)
    assert model.logical.weight.shape == (10, 40)
    assert _count(model) == 8 + 50 + 40 * 400 + 40 * 32 * 6 + 10 * 40
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_ablations_drop_layers():
    model = semantic_mnist((3, 5), two_step=False, conv=False)
    assert model.two_step is None and model.conv is None
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(model(x), model.logical(model.affine(x)))


def test_processing_steps_are_consistent_with_the_forward_pass():
    torch.manual_seed(0)
    model = semantic_mnist((3, 5)).eval()
    x = torch.rand(5, 1, 28, 28)
    steps = processing_steps(model, x)
    torch.testing.assert_close(steps["logits"], model(x))
    torch.testing.assert_close(steps["probs"].sum(1), torch.ones(5))
    torch.testing.assert_close(steps["conv"], model.conv(model.two_step(x)))
    # the shown pose really is the best match of the class block: <conv, pose> == match value
    dots = (steps["conv"] * steps["class_pose_image"]).flatten(2).sum(2)
    torch.testing.assert_close(dots.clamp_min(0), steps["class_match"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(steps["class_match"], steps["affine"].view(5, 2, 4).max(2).values)
    assert steps["class_feature"][:, 0].lt(4).all() and steps["class_feature"][:, 1].ge(4).all()
    assert steps["conv_pose"].shape == (5, 28, 28) and steps["conv_pose"].max() < 64


def test_bad_inputs_raise_value_error():
    model = semantic_mnist((3, 5))
    with pytest.raises(ValueError, match="shape"):
        model(torch.rand(2, 28, 28))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        processing_steps(model, torch.rand(1, 1, 28, 28) * 2)
    with pytest.raises(ValueError, match="digits"):
        semantic_mnist((3, 3))
    with pytest.raises(ValueError, match="digits"):
        semantic_mnist((3, 11))
    with pytest.raises(ValueError, match="SemanticNetwork"):
        processing_steps(torch.nn.Identity(), torch.rand(1, 1, 28, 28))


def test_model_file_roundtrip(tmp_path):
    from whiteboxdl.models.checkpoint import load_model, save_model

    model = semantic_mnist((2, 7, 9))
    save_model(tmp_path / "m.pt", model, "whiteboxdl.semantic.network:semantic_mnist",
               {"digits": [2, 7, 9], "two_step": True, "conv": True})
    loaded = load_model(tmp_path / "m.pt")
    assert isinstance(loaded, SemanticNetwork) and loaded.class_names == ("2", "7", "9")
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model.eval()(x))
