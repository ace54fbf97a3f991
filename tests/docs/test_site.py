"""The documentation site as a reader sees it: Debian Chromium (Playwright) on the built pages.

The site is ``site/`` when ``make docs`` built it after the last change to ``docs/`` or
``src/`` (CI builds it before the tests). Otherwise the test builds what it reads into a
temporary folder with the same strict options: every API page and the first tutorial, the only
one it runs (about a minute on 2 CPU cores). Without the docs extra (Sphinx, sphinx-gallery)
the tests are skipped.
"""

from __future__ import annotations

import functools
import inspect
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
TUTORIAL = "_tutorials/plot_1_pullbacks.html"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is missing: install Debian's chromium "
                              "(`make system-deps` does it as root)"),
]


def _newest_source() -> float:
    """When the newest file the site is built from changed (not counting what the build writes
    into docs/: the tutorial pages and their timings)."""
    files = [p for d in ("docs", "src/whiteboxdl") for p in (ROOT / d).rglob("*")
             if p.is_file() and not {"_tutorials", "__pycache__"} & set(p.parts)
             and p.name != "sg_execution_times.rst"]
    return max(p.stat().st_mtime for p in files)


@pytest.fixture(scope="module")
def site(tmp_path_factory, mnist_available) -> Path:
    built = ROOT / "site"
    if (built / TUTORIAL).is_file() and (built / "index.html").stat().st_mtime > _newest_source():
        return built
    pytest.importorskip("sphinx", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("sphinx_gallery", reason="the docs extra is not installed")
    if not mnist_available:
        pytest.skip("MNIST cache is empty: run `make test` (it fetches MNIST first)")
    out = tmp_path_factory.mktemp("site")
    # sphinx-gallery writes the tutorial pages next to their sources: build from a copy of
    # docs/, so that this run leaves the work tree (and a `make docs` running beside it) alone.
    docs = tmp_path_factory.mktemp("docs-src") / "docs"
    shutil.copytree(ROOT / "docs", docs,
                    ignore=shutil.ignore_patterns("_tutorials", "sg_execution_times.rst"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-n", "-q", "-b", "html",
           "-d", str(out / ".doctrees"), "-D", "sphinx_gallery_conf.filename_pattern=/plot_1_",
           str(docs), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, f"the docs build failed:\n{done.stdout[-3000:]}{done.stderr[-6000:]}"
    return out


@pytest.fixture(scope="module")
def server(site):
    """The site over HTTP on a loopback port, as ``python -m http.server -d site`` serves it."""
    handler = functools.partial(type("Quiet", (SimpleHTTPRequestHandler,),
                                     {"log_message": lambda *a: None}), directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def page(server, open_chromium):
    with open_chromium(1300, 1000, 30_000) as page:
        yield page


def test_api_page_shows_the_signature_of_excitation_pullbacks(page, server):
    from whiteboxdl.pullbacks import excitation_pullbacks

    page.goto(server + "api/pullbacks.html#whiteboxdl.pullbacks.excitation_pullbacks")
    entry = page.locator('[id="whiteboxdl.pullbacks.excitation_pullbacks"]')
    signature = " ".join(entry.inner_text().split())
    # the parameters with their type hints and defaults, and the return type
    assert signature.startswith("whiteboxdl.pullbacks.excitation_pullbacks(settings: "
                                "PullbackSettings | None = None, **options: Any) → "
                                "ExcitationPullbacks"), signature
    # the type hint links to the class's entry, and the docstring is rendered under it
    link = entry.locator("a", has_text="PullbackSettings").first
    assert link.get_attribute("href").endswith("#whiteboxdl.pullbacks.PullbackSettings")
    body = page.locator('[id="whiteboxdl.pullbacks.excitation_pullbacks"] + dd').inner_text()
    assert inspect.getdoc(excitation_pullbacks).splitlines()[0].rstrip(".") in body


def test_tutorial_page_shows_its_figures_and_output(page, server):
    page.goto(server + TUTORIAL)
    assert "Excitation pullbacks" in page.locator("h1").first.inner_text()
    figures = page.locator("img.sphx-glr-single-img, img.sphx-glr-multi-img")
    figures.first.wait_for(state="visible")
    page.wait_for_function("() => [...document.querySelectorAll('img[class*=sphx-glr]')]"
                           ".every(i => i.complete)")
    sizes = figures.evaluate_all("imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])")
    assert len(sizes) >= 4 and all(w > 100 and h > 100 for w, h in sizes), sizes
    # the output the figures came with, printed while the docs were built
    output = page.locator(".sphx-glr-script-out").all_inner_texts()
    assert any("cosine(pullback, gradient) per image" in text for text in output)
