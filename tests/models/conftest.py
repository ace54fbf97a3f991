"""One intra-op thread for the model tests: on a shared 2-core machine two spinning OpenMP
threads per process made this directory ~5x slower (157 s vs 31 s); results do not depend on it."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
