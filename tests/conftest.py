"""Shared fixtures. Tests that need real MNIST use the cache filled by `make test`."""

from __future__ import annotations

import contextlib

import pytest
import torch

#: Debian's Chromium, driven by Playwright (never a browser download).
CHROMIUM = "/usr/bin/chromium"


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


#: The shared labelled ImageNet sample (500 images, labels.csv: file,class_index,wnid,class_name),
#: beside the repository as ../shared/data/imagenet-sample (override: $WHITEBOXDL_IMAGENET_SAMPLE).
#: Never copied into the repository.
def _imagenet_sample_dir():
    import os
    from pathlib import Path

    env = os.environ.get("WHITEBOXDL_IMAGENET_SAMPLE")
    root = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data" \
        / "imagenet-sample"
    return root if (root / "labels.csv").is_file() else None


@pytest.fixture(scope="session")
def imagenet_sample():
    """``[(path, class index), ...]`` of the shared ImageNet sample; skips when it is absent."""
    root = _imagenet_sample_dir()
    if root is None:
        pytest.skip("the shared ImageNet sample (../shared/data/imagenet-sample/labels.csv, or "
                    "$WHITEBOXDL_IMAGENET_SAMPLE) is not here")
    from whiteboxdl.data.folders import read_labels_csv

    return read_labels_csv(root).rows()


@pytest.fixture(scope="session")
def imagenet_sample_if_here():
    """The shared sample's rows, or ``[]`` when it is absent (for tests that use it if they can)."""
    root = _imagenet_sample_dir()
    if root is None:
        return []
    from whiteboxdl.data.folders import read_labels_csv

    return read_labels_csv(root).rows()


@pytest.fixture(scope="session")
def open_chromium():
    """``open_chromium(width, height, timeout_ms)``: a context manager yielding a page of headless
    Debian Chromium (the flags the environment prescribes), closed afterwards."""
    @contextlib.contextmanager
    def open_page(width: int, height: int, timeout_ms: int):
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            try:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.set_default_timeout(timeout_ms)
                yield page
            finally:
                browser.close()
    return open_page
