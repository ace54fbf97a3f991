"""timm models by name: random init, checkpoint paths, the Hugging Face and torch hub caches
(files only, never a download), one clear offline error; PVT-v2-b1 under every rule."""

from __future__ import annotations

import socket
import warnings

import pytest
import torch

from whiteboxdl.models import timm_models
from whiteboxdl.models.registry import availability, resolve_model
from whiteboxdl.pullbacks import UnhandledOpWarning, excitation_pullbacks

timm = pytest.importorskip("timm")


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Empty Hugging Face and torch hub caches, and no network."""
    import huggingface_hub.constants

    hf = tmp_path / "hf"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(*args, **kwargs):
        raise AssertionError("tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return hf, tmp_path / "torch" / "hub" / "checkpoints"


def _hf_snapshot(cache, repo_id: str, filename: str):
    """The Hugging Face cache layout: refs/main names a snapshot holding the file."""
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    return snapshot / filename


def _x(size=64):
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_random_init_contract_and_wrapper(empty_caches):
    loaded = resolve_model("timm:resnet18", weights=None)
    assert loaded.family == "timm" and loaded.label == "resnet18 (timm)"
    contract = loaded.contract
    cfg = timm_models.pretrained_config("resnet18")
    assert (contract.size, contract.bounds) == (224, (-1.0, 1.0))
    assert contract.resize == round(224 / cfg["crop_pct"]) and len(contract.class_names) == 1000
    x = _x()
    net = loaded.model.model
    mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net(((x + 1) / 2 - mean) / std))
    assert availability("timm:resnet18:random") == (True, "random initialisation")


def test_no_cached_weights_is_one_clear_offline_error(empty_caches):
    hf, _ = empty_caches
    with pytest.raises(FileNotFoundError) as info:
        resolve_model("timm:pvt_v2_b1")
    message = str(info.value)
    assert "timm/pvt_v2_b1.in1k" in message and str(hf) in message
    assert "pretrained=True" in message and "weights=None" in message
    usable, why = availability("timm:pvt_v2_b1")
    assert not usable and why == message
    with pytest.raises(ValueError, match="unknown timm model 'pvt_v2_bx'; did you mean pvt_v2_b"):
        resolve_model("timm:pvt_v2_bx")


def test_weights_from_the_hugging_face_cache(empty_caches):
    from safetensors.torch import save_file

    hf, _ = empty_caches
    source = timm.create_model("resnet10t", pretrained=False).eval()
    hub_id = timm_models.pretrained_config("resnet10t")["hf_hub_id"]
    save_file(source.state_dict(), str(_hf_snapshot(hf, hub_id, "model.safetensors")))
    assert availability("timm:resnet10t")[0]
    loaded = resolve_model("timm:resnet10t")
    with torch.no_grad():
        assert torch.equal(loaded.model.model(_x()), source(_x()))


def test_weights_from_the_torch_hub_cache(empty_caches):
    _, checkpoints = empty_caches
    source = timm.create_model("resnet10t", pretrained=False).eval()
    url = timm_models.pretrained_config("resnet10t")["url"]
    checkpoints.mkdir(parents=True)
    torch.save(source.state_dict(), checkpoints / url.rsplit("/", 1)[1])
    loaded = resolve_model("timm:resnet10t")
    with torch.no_grad():
        assert torch.equal(loaded.model.model(_x()), source(_x()))


def test_checkpoint_paths(tmp_path, empty_caches):
    source = timm.create_model("resnet10t", pretrained=False, num_classes=7).eval()
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}},
               tmp_path / "trained.pth")
    for spec, weights in ((f"timm:resnet10t:{tmp_path / 'trained.pth'}", "DEFAULT"),
                          ("timm:resnet10t", str(tmp_path / "trained.pth"))):
        model = resolve_model(spec, weights=weights).model
        with torch.no_grad():
            assert torch.equal(model.model(_x()), source(_x()))        # 7 classes inferred
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="does not fit timm model resnet10t"):
        resolve_model(f"timm:resnet10t:{tmp_path / 'wrong.pth'}")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        resolve_model("timm:resnet10t", weights=str(tmp_path / "absent.pth"))


def _set_fused(model, flag: bool) -> None:
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = flag


@pytest.fixture(scope="module")
def pvt():
    torch.manual_seed(0)
    return resolve_model("timm:pvt_v2_b1", weights=None).model.double()


def test_pvt_v2_b1_all_rules_both_attention_paths(pvt):
    """Forward bit-identical on timm's fused (scaled_dot_product_attention) and manual
    (softmax then matmul) attention; the pullbacks of the two paths agree, so the manual one is
    caught too; every nonlinearity has a rule; the result is not the vanilla gradient."""
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = x * 2 - 1
    grads = {}
    for fused in (True, False):
        _set_fused(pvt, fused)
        with torch.no_grad():
            plain = pvt(x)
        xs = x.clone().requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("error", UnhandledOpWarning)
            with excitation_pullbacks(rules="all", attention_temperature=2.0):
                out = pvt(xs)
                (grads[fused],) = torch.autograd.grad(out[0, 3], xs)
        assert torch.equal(out.detach(), plain)
    _set_fused(pvt, True)
    torch.testing.assert_close(grads[False], grads[True], rtol=1e-9, atol=1e-12)
    xs = x.clone().requires_grad_()
    (vanilla,) = torch.autograd.grad(pvt(xs)[0, 3], xs)
    assert (vanilla - grads[True]).abs().max() > 0.1 * vanilla.abs().max()
