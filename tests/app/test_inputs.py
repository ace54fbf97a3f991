"""Input validation of the app: uploads, drawings, targets and numbers."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from whiteboxdl.app import inputs


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_upload_variants_decode_to_the_same_rgb(tmp_path):
    img = Image.new("RGB", (5, 4), (10, 20, 30))
    raw = _png(img)
    path = tmp_path / "a.png"
    path.write_bytes(raw)
    data_url = "data:image/png;base64," + base64.b64encode(raw).decode()
    arrays = [np.asarray(inputs.image_from_upload(v)) for v in
              (raw, path, str(path), data_url, img, np.asarray(img))]
    for arr in arrays:
        assert arr.shape == (4, 5, 3) and arr[0, 0].tolist() == [10, 20, 30]


def test_sketchpad_dict_uses_the_composite_on_white():
    rgba = np.zeros((6, 6, 4), dtype=np.uint8)  # fully transparent canvas ...
    rgba[2, 3] = (0, 0, 0, 255)                 # ... with one black stroke pixel
    out = np.asarray(inputs.image_from_upload({"background": None, "layers": [],
                                               "composite": rgba}))
    assert out[2, 3].tolist() == [0, 0, 0] and out[0, 0].tolist() == [255, 255, 255]


def test_integer_arrays_keep_their_scale():
    """A dim int64 image stays dim (not stretched to white); 16-bit values are read as 16 bits."""
    dim = np.full((4, 4, 3), 100, dtype=np.int64)
    assert np.asarray(inputs.image_from_upload(dim))[0, 0].tolist() == [100, 100, 100]
    deep = np.full((4, 4), 128 * 257, dtype=np.int32)     # 128 on the 8-bit scale
    assert np.asarray(inputs.image_from_upload(deep))[0, 0].tolist() == [128, 128, 128]
    low16 = np.full((4, 4), 255, dtype=np.uint16)          # uint16 is 16-bit even if dark
    assert np.asarray(inputs.image_from_upload(low16))[0, 0].tolist() == [1, 1, 1]


@pytest.mark.parametrize("bad, words", [
    (None, "no image"),
    (np.full((4, 4), -1, dtype=np.int64), r"0\.\.255.*range \[-1, -1\]"),
    (np.full((4, 4), 70000, dtype=np.int64), "16-bit"),
    ({"composite": None}, "drawing is empty"),
    (b"this is not an image", "not a readable image"),
    (np.full((4, 4), np.nan), "NaN"),
    (np.zeros((4, 4, 2), dtype=np.uint8), "shape"),
    ("data:image/png;base64,!!!", "not a readable image"),
])
def test_bad_uploads_raise_value_error_with_a_reason(bad, words):
    with pytest.raises(ValueError, match=words):
        inputs.image_from_upload(bad)


def test_huge_upload_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(inputs, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(ValueError, match="limit"):
        inputs.image_from_upload(b"\x89PNG" + b"0" * 200)


def test_huge_pixel_count_is_refused():
    # 10000 x 5000 = 50M pixels > the loader's 40M limit; a PNG of one colour is tiny on disk.
    raw = _png(Image.new("L", (10000, 5000)))
    with pytest.raises(ValueError, match="pixels"):
        inputs.image_from_upload(raw)


def test_mnist_tensor_keeps_28x28_and_inverts_light_backgrounds():
    arr = np.zeros((28, 28), dtype=np.uint8)
    arr[10:15, 12:14] = 255
    x = inputs.mnist_tensor(Image.fromarray(arr).convert("RGB"))
    assert tuple(x.shape) == (1, 1, 28, 28)
    assert torch.equal(x[0, 0], torch.from_numpy(arr / 255.0).float())
    inverted = inputs.mnist_tensor(Image.fromarray(255 - arr).convert("RGB"))
    assert torch.allclose(inverted, x)


def test_drawing_is_normalised_like_mnist():
    # A black 100x40 bar drawn off-centre on a white 400x400 canvas.
    canvas = np.full((400, 400), 255, dtype=np.uint8)
    canvas[20:120, 300:340] = 0
    x = inputs.mnist_tensor(Image.fromarray(canvas).convert("RGB"))[0, 0].numpy()
    rows, cols = np.nonzero(x > 0.5)
    assert rows.max() - rows.min() + 1 == inputs.DIGIT_BOX          # longest side -> 20 px
    cy, cx = (np.indices(x.shape) * x).reshape(2, -1).sum(1) / x.sum()
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1              # centred
    assert float(x.max()) == pytest.approx(1.0, abs=0.02)


def test_imagenet_tensor_geometry_and_range():
    from whiteboxdl.app.models import ModelSpec

    img = Image.new("RGB", (640, 480), (255, 0, 0))
    x = ModelSpec.of("resnet50").contract.load(img)        # what the app feeds ImageNet models
    assert tuple(x.shape) == (1, 3, 224, 224)
    assert x[0, 0].eq(1).all() and x[0, 1].eq(-1).all()


@pytest.mark.parametrize("value, expected", [
    ("207 – golden retriever", 207), ("3", 3), (5, 5), (np.int64(9), 9), (inputs.AUTO_TARGET, None),
    (None, None), ("", None),
])
def test_parse_target(value, expected):
    assert inputs.parse_target(value, n_classes=1000) == expected


@pytest.mark.parametrize("value, words", [("1000 – x", "out of range"), (-1, "out of range"),
                                          ("cat", "not one of the listed"), (True, "not one")])
def test_parse_target_rejects(value, words):
    with pytest.raises(ValueError, match=words):
        inputs.parse_target(value, n_classes=1000)
