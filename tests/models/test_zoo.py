"""torchvision zoo: names, [-1, 1] wrapper, weights from files and from the hub cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from whiteboxdl.data.imagenet import IMAGENET_MEAN, IMAGENET_STD, SignedImageNetInput
from whiteboxdl.models.checkpoint import save_model
from whiteboxdl.models.zoo import (
    BUILDER,
    class_names,
    classifier_names,
    load_classifier,
    weights_available,
    weights_path,
)


@pytest.fixture
def hub_home(tmp_path, monkeypatch) -> Path:
    """An empty torch home, so that the real hub cache never leaks into a test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def _normalised(x: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation of a [-1, 1] image, written independently of the wrapper."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x + 1) / 2 - mean) / std


def test_names_cover_the_paper_models():
    names = classifier_names()
    assert {"resnet50", "vgg11_bn", "densenet121"} <= set(names)
    assert names == sorted(names) and len(names) > 50
    # detection/segmentation builders are not classifiers
    assert "fasterrcnn_resnet50_fpn" not in names


@pytest.mark.parametrize("name,size", [("resnet50", 64), ("vgg11_bn", 32), ("densenet121", 32)])
def test_random_init_wrapped_for_signed_input(name, size):
    torch.manual_seed(0)
    model = load_classifier(name, weights=None)
    assert isinstance(model, SignedImageNetInput) and not model.training
    assert not any(m.training for m in model.modules())
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        out = model(x)
        bare = model.model(_normalised(x))
    assert out.shape == (2, 1000)
    torch.testing.assert_close(out, bare, rtol=1e-5, atol=1e-5)
    # the wrapper really changes the input: the bare model on the raw [-1, 1] image differs
    with torch.no_grad():
        assert not torch.allclose(model.model(x), out, atol=1e-3)


def test_unwrapped_option_and_case_insensitive_name():
    model = load_classifier("ResNet18", weights=None, signed_input=False)
    assert isinstance(model, torchvision.models.ResNet) and not model.training


def test_state_dict_file_loads_exactly(tmp_path):
    torch.manual_seed(1)
    source = torchvision.models.resnet18(num_classes=1000).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    loaded = load_classifier("resnet18", weights=path, signed_input=False)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_nested_prefixed_and_finetuned_state_dicts(tmp_path):
    torch.manual_seed(2)
    source = torchvision.models.resnet18(num_classes=7).eval()
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}},
               path)
    loaded = load_classifier("resnet18", weights=str(path))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), source(_normalised(x)))
    assert loaded(x).shape == (1, 7)


def test_whiteboxdl_model_file_round_trip(tmp_path):
    torch.manual_seed(3)
    source = load_classifier("resnet18", weights=None, signed_input=False)
    path = tmp_path / "model.pt"
    save_model(path, source, BUILDER, {"name": "resnet18", "num_classes": 1000})
    loaded = load_classifier("resnet18", weights=path, signed_input=False)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))
    with pytest.raises(ValueError, match="not resnet34"):
        load_classifier("resnet34", weights=path)


def test_checkpoint_of_other_architecture_is_rejected(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="does not fit resnet34"):
        load_classifier("resnet34", weights=path)


def test_enum_weights_offline_without_cache_names_the_path(hub_home):
    expected = hub_home / "resnet50-11ad3fa6.pth"  # file name of ResNet50_Weights.IMAGENET1K_V2
    assert weights_path("resnet50") == expected
    assert not weights_available("resnet50")
    with pytest.raises(FileNotFoundError) as info:
        load_classifier("resnet50")
    message = str(info.value)
    assert str(expected) in message and "resnet50-11ad3fa6.pth" in message
    assert "download=True" in message
    with pytest.raises(FileNotFoundError, match="vgg11_bn-6002323d.pth"):
        load_classifier("vgg11_bn", weights="IMAGENET1K_V1")


def test_cached_enum_file_is_picked_up(hub_home):
    """A file at the expected hub path is loaded through torchvision's real loading code."""
    torch.manual_seed(4)
    source = torchvision.models.resnet18().eval()
    path = weights_path("resnet18", "IMAGENET1K_V1")
    assert path == hub_home / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    assert weights_available("resnet18") and weights_available("resnet18", "IMAGENET1K_V1")
    for spec in ("DEFAULT", "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1",
                 torchvision.models.ResNet18_Weights.IMAGENET1K_V1):
        loaded = load_classifier("resnet18", weights=spec, signed_input=False)
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())


def test_unknown_names_and_weights():
    with pytest.raises(ValueError, match="did you mean.*resnet50"):
        load_classifier("resnet05", weights=None)
    with pytest.raises(ValueError, match="unknown classifier 'nonsense'"):
        weights_available("nonsense")
    with pytest.raises(ValueError, match="IMAGENET1K_V2"):
        load_classifier("resnet50", weights="IMAGENET1K_V9")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_classifier("resnet50", weights="/nonexistent/dir/model.pt")
    with pytest.raises(ValueError, match="not weights of resnet50"):
        load_classifier("resnet50", weights=torchvision.models.VGG11_BN_Weights.IMAGENET1K_V1)


def test_class_names_offline():
    names = class_names("densenet121")
    assert len(names) == 1000 and names[207] == "golden retriever" and names[0] == "tench"
    assert class_names("vgg11_bn") == names
