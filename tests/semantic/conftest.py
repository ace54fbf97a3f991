"""Semantic tests run single-threaded: on a shared, oversubscribed CPU two OpenMP threads spin
and make small ops up to 50x slower; one thread is also what the timings in BENCHMARKS.md use."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
