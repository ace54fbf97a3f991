"""Shared fixtures. Tests that need real MNIST use the cache filled by `make test`."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def mnist_available() -> bool:
    from whiteboxdl.data.mnist import locate

    try:
        locate("mnist", download=False)
    except FileNotFoundError:
        return False
    return True


@pytest.fixture
def needs_mnist(mnist_available):
    if not mnist_available:
        pytest.skip("MNIST cache is empty: run `make test` (it fetches MNIST first)")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
