"""Fixtures of the app tests: a small really-trained MNIST CNN and the app on a loopback port."""

from __future__ import annotations

import socket
import time

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_registry():
    from whiteboxdl.app.models import ModelRegistry

    return ModelRegistry()


@pytest.fixture(scope="session")
def app_url(app_registry):
    """The app launched on 127.0.0.1:<free port> in this process, for gradio_client and Chromium."""
    from whiteboxdl.app.ui import launch

    port = free_port()
    demo = launch("127.0.0.1", port, app_registry, block=False)
    url = f"http://127.0.0.1:{port}/"
    yield url
    demo.close()


@pytest.fixture(scope="session")
def client(app_url):
    from gradio_client import Client

    start = time.perf_counter()
    c = Client(app_url, verbose=False)
    assert time.perf_counter() - start < 30
    return c
