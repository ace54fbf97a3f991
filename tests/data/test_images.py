"""Image loading of odd modes, bad files, the paper's preprocessing and the [-1,1] wrapper."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from whiteboxdl.data import images
from whiteboxdl.data.imagenet import SignedImageNetInput, imagenet_classes


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I;16", "CMYK", "1"])
def test_odd_modes_become_rgb(mode):
    img = Image.new(mode, (7, 5))
    out = images.load_image(img)
    assert out.mode == "RGB" and out.size == (7, 5)


def test_transparency_is_composited_on_white():
    img = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    img.putpixel((0, 0), (10, 20, 30, 255))
    out = np.asarray(images.load_image(img))
    assert out[0, 0].tolist() == [10, 20, 30] and out[1, 1].tolist() == [255, 255, 255]


V16 = 40000 / 65535


def _grey16_png(tmp_path, value, shape=(300, 400)):
    path = tmp_path / f"grey16-{value}.png"
    Image.fromarray(np.full(shape, value, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")       # really a 16-bit greyscale PNG
    return path


def test_16bit_greyscale_png_keeps_its_absolute_value(tmp_path):
    path = _grey16_png(tmp_path, 40000)
    x = images.preprocess(path)
    assert x.shape == (1, 3, 224, 224)
    assert torch.allclose(x, torch.full_like(x, 2 * V16 - 1), atol=1e-6)   # not stretched to -1
    deep = images.load_image(path, keep_depth=True)
    assert deep.mode == "F"
    unit = images.to_unit_tensor(deep)
    assert torch.equal(unit, torch.full((1, 3, 300, 400), V16, dtype=torch.float32))
    assert images.load_image(path).getpixel((0, 0)) == (156, 156, 156)    # 8 bits: round(V16*255)
    # the same image as 8-bit RGB gives the same value, up to 8-bit rounding
    rgb = images.preprocess(Image.new("RGB", (300, 400), (156, 156, 156)))
    assert (rgb - x).abs().max() < 1 / 255


def test_near_black_16bit_image_stays_near_black(tmp_path):
    arr = np.array([[0, 200], [100, 300]], dtype=np.uint16)
    path = tmp_path / "dark.png"
    Image.fromarray(arr).save(path)
    unit = images.to_unit_tensor(images.load_image(path, keep_depth=True))
    assert torch.allclose(unit[0, 0], torch.tensor(arr / 65535, dtype=torch.float32))
    assert float(unit.max()) < 0.005                            # not stretched to full range
    assert np.asarray(images.load_image(path)).max() <= 1


def test_float_images_keep_their_values_and_nan_is_refused(tmp_path):
    arr = np.array([[0.1, 0.25], [0.5, 0.9]], dtype=np.float32)
    unit = images.to_unit_tensor(images.load_image(arr, keep_depth=True), channels=1)
    assert torch.equal(unit[0, 0], torch.from_numpy(arr))
    path = tmp_path / "float.tiff"
    Image.fromarray(arr, mode="F").save(path)
    assert torch.equal(images.to_unit_tensor(images.load_image(path, keep_depth=True))[0, 2],
                       torch.from_numpy(arr))
    nan = tmp_path / "nan.tiff"
    Image.fromarray(np.full((4, 4), np.nan, dtype=np.float32), mode="F").save(nan)
    for call in (lambda: images.load_image(nan), lambda: images.preprocess(nan),
                 lambda: images.to_unit_tensor(Image.open(nan))):
        with pytest.raises(ValueError, match="NaN"):
            call()
    loud = tmp_path / "loud.tiff"
    for value in (300.0, 2.5, -0.1):
        Image.fromarray(np.full((4, 4), value, dtype=np.float32), mode="F").save(loud)
        with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\]"):
            images.load_image(loud)
    # PIL's own 8-bit -> float conversion keeps the 0..255 scale: read as the 8-bit image
    eight = Image.fromarray(np.array([[0, 40], [128, 255]], dtype=np.uint8))
    assert torch.equal(images.to_unit_tensor(eight.convert("F")), images.to_unit_tensor(eight))
    with pytest.raises(ValueError, match="outside the 16-bit range"):
        images.load_image(Image.new("I", (2, 2), 70000))


def test_bicubic_overshoot_of_float_images_is_clipped():
    arr = np.zeros((8, 8), dtype=np.float32)
    arr[:, 4:] = 1.0                                         # a hard edge rings under bicubic
    out = images.to_unit_tensor(images.resize_image(Image.fromarray(arr, mode="F"), (21, 21)))
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


@pytest.mark.parametrize("kwargs,match", [(dict(size="224"), "size must be a whole number"),
                                          (dict(size=0), "size must be a whole number >= 1"),
                                          (dict(size=2.5), "size must be a whole number"),
                                          (dict(size=300, resize=256), "need size <= resize")])
def test_preprocess_sizes_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        images.preprocess(Image.new("RGB", (8, 8)), **kwargs)


def test_bytes_path_and_arrays(tmp_path):
    img = Image.new("RGB", (4, 3), (1, 2, 3))
    path = tmp_path / "x.png"
    img.save(path)
    assert np.asarray(images.load_image(path))[0, 0].tolist() == [1, 2, 3]
    assert np.asarray(images.load_image(_png_bytes(img)))[0, 0].tolist() == [1, 2, 3]
    arr = np.full((3, 4), 0.5, dtype=np.float32)
    assert np.asarray(images.load_image(arr))[0, 0].tolist() == [128, 128, 128]


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found"):
        images.load_image(tmp_path / "missing.png")
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        images.load_image(bad)
    with pytest.raises(ValueError, match="not a readable image"):
        images.load_image(_png_bytes(Image.new("RGB", (50, 50)))[:60])
    with pytest.raises(ValueError, match="NaN"):
        images.load_image(np.full((2, 2), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        images.load_image(np.full((2, 2), 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        images.load_image(np.zeros((2, 2, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="cannot load an image from a int"):
        images.load_image(3)


def test_decompression_bomb_is_refused():
    big = _png_bytes(Image.new("L", (3000, 3000)))
    with pytest.raises(ValueError, match="larger than the limit"):
        images.load_image(big, max_pixels=1_000_000)


@pytest.mark.parametrize("size", [(300, 300), (400, 300), (100, 500), (224, 224)])
def test_preprocessing_sizes(size):
    img = Image.new("RGB", size, (255, 0, 0))
    x = images.preprocess(img)
    assert x.shape == (1, 3, 224, 224)
    assert torch.allclose(x[0, 0], torch.ones(224, 224)) and torch.allclose(x[0, 1], -torch.ones(224, 224))


def test_centre_crop_takes_the_centre():
    arr = np.zeros((256, 512, 3), dtype=np.uint8)
    arr[:, 256 - 112:256 + 112] = 255  # a white band exactly the width of the crop, centred
    out = np.asarray(images.resize_and_crop(Image.fromarray(arr)))
    assert out.shape == (224, 224, 3)
    assert out[:, 5:-5].min() > 240  # the crop is entirely inside the white band


def test_signed_round_trip_and_to_pil():
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(images.signed_to_unit(images.unit_to_signed(x)), x)
    pil = images.to_pil(images.unit_to_signed(x))
    back = images.to_unit_tensor(pil)
    assert (back - x).abs().max() <= 0.5 / 255 + 1e-6


def test_wrapper_maps_signed_inputs_to_imagenet_normalisation():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, z):
            seen["z"] = z
            return z.mean((2, 3))

    wrapper = SignedImageNetInput(Probe())
    x = torch.rand(2, 3, 4, 4) * 2 - 1
    wrapper(x)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(seen["z"], ((x + 1) / 2 - mean) / std)
    assert torch.allclose(wrapper.denormalise(seen["z"]), x, atol=1e-6)
    with pytest.raises(ValueError, match="expected a batch"):
        wrapper(torch.zeros(3, 4, 4))


def test_imagenet_classes_offline():
    names = imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and names[999] == "toilet tissue"


def test_example_images_load():
    examples = images.example_images()
    assert {"cat", "coffee", "rocket", "astronaut"} <= set(examples)
    for path in examples.values():
        assert images.preprocess(path).shape == (1, 3, 224, 224)
