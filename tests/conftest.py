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


#: Test folders run with one torch thread: on a shared, oversubscribed 2-core machine two
#: spinning OpenMP threads made their many small ops 5-50x slower; results do not depend on it.
ONE_THREAD_DIRS = {"models", "semantic", "quality", "cluster", "robustness"}


@pytest.fixture(autouse=True)
def _one_thread_where_it_helps(request):
    if request.node.path.parent.name not in ONE_THREAD_DIRS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
