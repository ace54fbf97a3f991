"""Fixtures of the app tests: really-trained small models and the app on a loopback port.

The MNIST CNN and the semantic network come from the project's cache when they were trained
already (``get_cnn("mnist")``, ``get_semantic_model()``). When they are missing, a short run of
the same training code trains them here instead of the full recipe: the CNN for one epoch on
5,000 MNIST images (~10-30 s on 2 busy CPU cores), the semantic network for one epoch (~5-10 s).
"""

from __future__ import annotations

import socket
import threading
import time
from functools import lru_cache

import pytest

_train_lock = threading.Lock()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@lru_cache(maxsize=1)
def trained_cnn():
    """The cached MNIST CNN, or one trained for one epoch on 12k images (same code, same data)."""
    from whiteboxdl.models.cnn import get_cnn, train_cnn

    try:
        return get_cnn("mnist", train_if_missing=False)
    except FileNotFoundError:
        from whiteboxdl.data.mnist import load_mnist

        x, y = load_mnist("train")
        xt, yt = load_mnist("test")
        model, _ = train_cnn("mnist", epochs=1, train_data=(x[:5000], y[:5000]),
                             test_data=(xt[:200], yt[:200]), progress=False)
        return model


@lru_cache(maxsize=1)
def trained_semantic():
    """The cached 3-vs-5 semantic network, or one trained for one epoch with the same recipe."""
    from whiteboxdl.semantic import get_semantic_model

    try:
        return get_semantic_model(train_if_missing=False)
    except FileNotFoundError:
        from dataclasses import replace

        from whiteboxdl.semantic.train import RECIPE, train_semantic

        model, _ = train_semantic((3, 5), replace(RECIPE, epochs=1), adv_check=0, progress=False)
        return model.eval()


def _load(fn):
    with _train_lock:
        return fn()


@pytest.fixture(scope="session")
def mnist_cnn(mnist_available):
    if not mnist_available:
        pytest.skip("MNIST cache is empty: run `make test` (it fetches MNIST first)")
    return _load(trained_cnn)


@pytest.fixture(scope="session")
def semantic_model(mnist_available):
    if not mnist_available:
        pytest.skip("MNIST cache is empty: run `make test` (it fetches MNIST first)")
    return _load(trained_semantic)


@pytest.fixture(scope="session")
def pullbacks():
    import whiteboxdl.pullbacks

    return whiteboxdl.pullbacks


@pytest.fixture(scope="session")
def app_registry():
    """Registry of the tests: the models above, ImageNet models with random weights."""
    from whiteboxdl.app.models import SEMANTIC_KEY, ModelRegistry

    return ModelRegistry(random_weights=True, loaders={"mnist-cnn": trained_cnn,
                                                       SEMANTIC_KEY: trained_semantic})


@pytest.fixture(scope="session")
def app_url(app_registry):
    """The app launched on 127.0.0.1:<free port> in this process, for gradio_client and Chromium."""
    from whiteboxdl.app.ui import launch

    port = free_port()
    demo = launch("127.0.0.1", port, app_registry, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    start = time.perf_counter()
    c = Client(app_url, verbose=False)
    assert time.perf_counter() - start < 30
    return c
