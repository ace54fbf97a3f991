"""The model registry: families with input contracts, and model files that cannot run code."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import whiteboxdl
from whiteboxdl.cli import main
from whiteboxdl.models.checkpoint import load_model, save_model
from whiteboxdl.models.cnn import mnist_cnn
from whiteboxdl.models.registry import (BUILTIN_MODULES, DIGITS, BuilderSpec, ModelFamily, Param,
                                        families, get_builder, load_model_file, model_contract,
                                        register_family, resolve_model)


def _hand_made(path, builder, kwargs, state=None):
    torch.save({"builder": builder, "kwargs": kwargs, "state_dict": state or {}}, path)
    return path


# -- model files name an allow-listed builder ----------------------------------------------------
@pytest.mark.parametrize("builder", [
    "whiteboxdl.cli:main",                      # would run the CLI with the file's argv
    "whiteboxdl.robustness.figures:plot_examples",   # a plotting function with a path kwarg
    "os:system", "builtins:eval", 42, None, ["whiteboxdl.models.cnn:mnist_cnn"],
    "whiteboxdl.models.cnn:mnist_cnn ",
])
def test_unregistered_builders_are_refused_before_any_import(tmp_path, builder, monkeypatch):
    import importlib

    imported = []
    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a, **k: imported.append(name) or real(name, *a, **k))
    path = _hand_made(tmp_path / "evil.pt", builder, {"argv": ["app", "--host", "0.0.0.0"]})
    with pytest.raises(ValueError, match="refusing to import builder"):
        load_model(path)
    assert "whiteboxdl.cli" not in imported and "os" not in imported


@pytest.mark.parametrize("kwargs, words", [
    ({"classes": 10 ** 9}, "outside the sane range"), ({"width": 100_000}, "outside the sane range"),
    ({"classes": "10"}, "must be int"), ({"classes": True}, "must be int"),
    ({"argv": ["x"]}, "takes no argument 'argv'"), ("classes=10", "must be a dict"),
])
def test_builder_kwargs_are_checked_against_bounds(tmp_path, kwargs, words):
    path = _hand_made(tmp_path / "m.pt", "whiteboxdl.models.cnn:mnist_cnn", kwargs)
    with pytest.raises(ValueError, match=words):
        load_model(path)


def test_mismatched_weights_and_missing_keys_are_clear_errors(tmp_path):
    good = mnist_cnn(classes=10, width=2)
    path = _hand_made(tmp_path / "m.pt", "whiteboxdl.models.cnn:mnist_cnn",
                      {"classes": 10, "width": 4}, good.state_dict())
    with pytest.raises(ValueError, match="do not fit"):
        load_model(path)
    torch.save({"builder": "whiteboxdl.models.cnn:mnist_cnn", "state_dict": {}}, tmp_path / "k.pt")
    with pytest.raises(ValueError, match="not a whiteboxdl model file"):
        load_model(tmp_path / "k.pt")
    with pytest.raises(ValueError, match="outside the sane range"):
        save_model(tmp_path / "x.pt", good, "whiteboxdl.models.cnn:mnist_cnn", {"classes": 1})


def test_every_registered_builder_matches_its_function_signature():
    import importlib
    import inspect

    for family in families():
        for builder in family.builders:
            module, _, name = builder.target.partition(":")
            params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
            assert set(builder.params) <= set(params), builder.target


def test_model_files_resolve_with_their_contract(tmp_path):
    cnn = mnist_cnn(classes=2, width=2)
    save_model(tmp_path / "cnn.pt", cnn, "whiteboxdl.models.cnn:mnist_cnn", {"classes": 2, "width": 2})
    loaded = resolve_model(tmp_path / "cnn.pt")
    assert loaded.family == "cnn" and loaded.contract.bounds == (0.0, 1.0)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded.model(x), cnn.eval()(x))
    from whiteboxdl.data.imagenet import SignedImageNetInput
    from whiteboxdl.models.zoo import BUILDER, build_classifier

    resnet = build_classifier("resnet18", num_classes=1000)
    save_model(tmp_path / "r.pt", resnet, BUILDER, {"name": "resnet18"})
    zoo = load_model_file(tmp_path / "r.pt")          # a torchvision file: wrapped to [-1, 1]
    assert isinstance(zoo.model, SignedImageNetInput) and zoo.contract.bounds == (-1.0, 1.0)
    assert zoo.contract.class_names[207] == "golden retriever"


def test_names_resolve_to_their_family_and_contract():
    assert model_contract("cnn-3-5").class_names == ("3", "5")
    assert model_contract("fashion-cnn").class_names[0] == "T-shirt/top"
    assert model_contract("semantic-0-1-2").class_names == ("0", "1", "2")
    photo = model_contract("resnet50")
    assert (photo.channels, photo.size, photo.resize, photo.kind) == (3, 224, 256, "photo")
    assert resolve_model("vgg11_bn:random").model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)
    with pytest.raises(ValueError, match="unknown model 'cnn-3'"):
        resolve_model("cnn-3")
    with pytest.raises(FileNotFoundError, match="train cnn --dataset mnist --digits 4 7"):
        resolve_model("cnn-4-7", train_if_missing=False)


def test_contract_preprocesses_and_checks_inputs(tmp_path):
    img = tmp_path / "photo.png"
    Image.fromarray(np.full((300, 400, 3), 255, np.uint8)).save(img)
    assert tuple(model_contract("resnet50").load(img).shape) == (1, 3, 224, 224)
    digit = DIGITS.load(img)
    assert tuple(digit.shape) == (1, 1, 28, 28) and float(digit.min()) == 1.0
    with pytest.raises(ValueError, match="takes grey 1×28×28 images in \\[0, 1\\].*3, 224, 224"):
        DIGITS.check(torch.zeros(2, 3, 224, 224))
    with pytest.raises(ValueError, match="lies in"):
        DIGITS.check(torch.full((1, 1, 28, 28), -1.0))
    with pytest.raises(ValueError, match="2 classes but the data has labels up to 9"):
        DIGITS.check_labels(torch.arange(10), 2)


def test_registering_a_family_is_one_entry():
    class Doubler(torch.nn.Module):
        def forward(self, x):
            return torch.cat([x.flatten(1).sum(1, keepdim=True)] * 2, 1)

    family = register_family(ModelFamily(
        "toy-doubler", claims=lambda name: name == "doubler", load=lambda n, w, t: Doubler(),
        contract=lambda name: DIGITS, names=lambda: ("doubler",),
        builders=(BuilderSpec("tests.models.test_model_registry:_never", {"k": Param(int, 0, 3)}),)))
    try:
        assert resolve_model("doubler").family == "toy-doubler"
        assert get_builder("tests.models.test_model_registry:_never").params["k"].high == 3
        with pytest.raises(ValueError, match="already registered"):
            register_family(family)
    finally:
        from whiteboxdl.models import registry

        registry._FAMILIES.pop("toy-doubler")
        registry._BUILDERS.pop("tests.models.test_model_registry:_never")


# -- consumers use the contract: incompatible model and data are refused at the door -------------
def test_quality_refuses_a_model_that_cannot_take_the_data(tmp_path, needs_mnist, capsys):
    save_model(tmp_path / "two.pt", mnist_cnn(classes=2, width=2), "whiteboxdl.models.cnn:mnist_cnn",
               {"classes": 2, "width": 2})
    rc = main(["quality", "evaluate", "--model", str(tmp_path / "two.pt"), "--data", "mnist",
               "--n", "4", "--explainers", "Gradient", "--metrics", "Infidelity",
               "--out", str(tmp_path / "run")])
    assert rc != 0 and "2 classes but --data mnist has labels up to" in capsys.readouterr().err
    # an RGB folder for a grey digit model is preprocessed by the model's contract, not fed raw
    folder = tmp_path / "rgb" / "a"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((32, 40, 3), 255, np.uint8)).save(folder / f"{i}.png")
    save_model(tmp_path / "ten.pt", mnist_cnn(classes=10, width=2),
               "whiteboxdl.models.cnn:mnist_cnn", {"classes": 10, "width": 2})
    from whiteboxdl.quality.runner import RunConfig, load_task

    task = load_task(RunConfig(model=str(tmp_path / "ten.pt"), data=f"imagefolder:{tmp_path / 'rgb'}",
                               n=2, explainers=["Gradient"], metrics=["Infidelity"]))
    assert tuple(task.x.shape) == (2, 1, 28, 28) and task.domain == (0.0, 1.0)
    assert bool((task.x == 1).all())


def test_every_module_that_registers_a_family_is_a_builtin():
    """BUILTIN_MODULES is kept by hand: a new family module missing from it would never load."""
    root = Path(whiteboxdl.__file__).parent
    registering = {".".join(("whiteboxdl", *p.relative_to(root).with_suffix("").parts))
                   for p in root.rglob("*.py")
                   if re.search(r"^\s*register_family\(", p.read_text(),
                                re.MULTILINE) and p.name != "registry.py"}
    assert registering == set(BUILTIN_MODULES)
