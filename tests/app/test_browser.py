"""A real browser (Debian Chromium via Playwright) uses the app like a person would."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is missing: install Debian's chromium "
                              "(`make system-deps` does it as root)"),
]


@pytest.fixture(scope="module")
def page(app_url, open_chromium):
    with open_chromium(1400, 1100, 60_000) as page:
        page.goto(app_url)
        yield page


def _rendered(page, selector: str) -> bool:
    """Whether every <img> under ``selector`` finished loading with a non-zero size."""
    return page.eval_on_selector_all(
        f"{selector} img",
        "imgs => imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)")


def _choose_model(page, label: str) -> None:
    page.locator("#pb-model input").click()
    page.get_by_role("option", name=label).click()
    page.wait_for_function(
        "label => document.querySelector('#pb-model input').value === label", arg=label)


def _explain_and_wait(page, expect: str) -> str:
    """Press Explain and wait until the status names ``expect`` and both sliders' images loaded
    (the page may still show an earlier request's images)."""
    page.locator("#pb-explain").click()
    page.wait_for_function(
        "expect => { const imgs = [...document.querySelectorAll("
        "'#pullback-diff-slider img, #pullback-input-slider img')];"
        " return imgs.length > 1 && imgs.every(i => i.complete && i.naturalWidth > 0)"
        " && document.querySelector('#pb-status').innerText.includes(expect); }",
        arg=expect, timeout=180_000)
    return page.locator("#pb-status").inner_text()


def test_pretrained_efficientnet_lite0_is_the_default_and_explains_a_photo(page, tmp_path,
                                                                          pullbacks):
    """One request on the default model, EfficientNet-Lite0 with its bundled ImageNet weights:
    the cat photo's predicted class is the target, and the top-5 lists it first."""
    from whiteboxdl.data.images import example_images

    page.get_by_text("whiteboxdl explorer").first.wait_for()
    assert page.locator("#pb-model input").input_value() == \
        "EfficientNet-Lite0 (ImageNet, bundled weights)"
    page.locator("#pb-input input[type=file]").set_input_files(str(example_images()["cat"]))
    page.locator("#pb-input img").first.wait_for(state="visible")
    status = _explain_and_wait(page, "target 282 – tiger cat")
    assert "target 282 – tiger cat" in status
    assert _rendered(page, "#pullback-diff-slider") and _rendered(page, "#pullback-input-slider")
    assert "tiger cat" in page.get_by_text("Top-5 of the input").locator("..").inner_text()
    page.screenshot(path=str(tmp_path / "lite0.png"), full_page=True)


def test_upload_explain_and_see_the_slider(page, tmp_path, needs_mnist, mnist_cnn, pullbacks):
    from whiteboxdl.app.handlers import mnist_digit

    digit, label = mnist_digit(0)
    upload = tmp_path / "digit.png"
    digit.resize((112, 112)).save(upload)
    page.get_by_text("whiteboxdl explorer").first.wait_for()
    _choose_model(page, "MNIST CNN (this project, 10 digits)")
    page.locator("#pb-input input[type=file]").set_input_files(str(upload))
    page.locator("#pb-input img").first.wait_for(state="visible")
    status = _explain_and_wait(page, "target 7 – seven")   # auto target = the predicted class
    assert _rendered(page, "#pullback-diff-slider") and _rendered(page, "#pullback-input-slider")
    assert "target 7 – seven" in status
    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_draw_a_digit_and_inspect_the_white_box_network(page, tmp_path, semantic_model):
    import io

    import numpy as np
    from PIL import Image

    page.get_by_role("tab", name="White-box network").click()
    sketch = page.locator("#wb-sketch")
    sketch.get_by_role("button", name="Brush").click()
    box = sketch.locator("canvas").first.bounding_box()
    x, top, height = box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2, box["height"]
    page.mouse.move(x, top)
    page.mouse.down()
    for i in range(1, 21):                       # a vertical stroke over 60% of the canvas
        page.mouse.move(x, top + height * 0.03 * i)
    page.mouse.up()
    page.get_by_role("button", name="Use drawing").click()
    digit = page.locator("#wb-digit img").first
    digit.wait_for(state="visible")
    png = page.request.get(digit.get_attribute("src")).body()
    arr = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float) / 255
    rows, cols = np.nonzero(arr > 0.5)           # drawn black on white -> MNIST white on black
    assert arr.shape == (28, 28) and rows.max() - rows.min() + 1 == 20
    assert cols.max() - cols.min() <= 4 and abs(cols.mean() - 13.5) <= 1.5
    page.locator("#wb-inspect").click()
    page.locator("#wb-clean-figure img").first.wait_for(state="visible")
    assert _rendered(page, "#wb-clean-figure") and _rendered(page, "#wb-clean-poses")
    note = page.locator("#wb-clean-note").inner_text()
    assert note.startswith("prediction ") and "logits 3:" in note
    page.screenshot(path=str(tmp_path / "whitebox.png"), full_page=True)
