"""The app's model registry: specs, availability messages, load-once under concurrency."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from whiteboxdl.app.models import ModelRegistry
from whiteboxdl.data.imagenet import imagenet_classes


def test_specs_match_the_models_inputs():
    registry = ModelRegistry()
    mnist, resnet = registry.spec("mnist-cnn"), registry.spec("resnet50")
    assert (mnist.size, mnist.bounds, len(mnist.classes)) == (28, (0.0, 1.0), 10)
    assert (resnet.size, resnet.bounds) == (224, (-1.0, 1.0))
    assert resnet.classes == imagenet_classes() and resnet.choices()[207] == "207 – golden retriever"
    assert registry.spec(resnet.label) is resnet
    with pytest.raises(ValueError, match="unknown model 'alexnet'"):
        registry.spec("alexnet")


def test_model_is_loaded_once_even_under_concurrent_first_requests():
    calls = []

    def slow_loader():
        calls.append(threading.get_ident())
        time.sleep(0.2)
        return torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).train()

    registry = ModelRegistry(loaders={"mnist-cnn": slow_loader})
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: registry.get("mnist-cnn"), range(8)))
    assert len(calls) == 1 and all(m is models[0] for m in models)
    assert not models[0].training
    assert not any(p.requires_grad for p in models[0].parameters())


def test_unavailable_model_explains_how_to_add_it(monkeypatch, tmp_path):
    from whiteboxdl.models import zoo
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))   # an empty hub cache: no weights
    registry = ModelRegistry()
    usable, why = registry.availability("vgg11_bn")
    assert not usable and str(zoo.weights_path("vgg11_bn")) in why
    with pytest.raises(ValueError, match="not available"):
        registry.get("vgg11_bn")
    assert ModelRegistry(random_weights=True).availability("vgg11_bn")[0]
