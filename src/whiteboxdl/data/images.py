"""Loading images safely and the paper's preprocessing into the [-1, 1] range.

Pixel values keep their absolute meaning: 8-bit images are read on the 0..255 scale, 16-bit
greyscale on 0..65535 and float images as they are (they must lie in [0, 1]); nothing is
stretched to the full range, and images with NaN or infinite values are refused (float images
holding whole numbers in 0..255, as PIL's ``convert("F")`` makes them, count as 8-bit values). ``load_image``
returns an 8-bit RGB image by default; with ``keep_depth=True`` a 16-bit or float greyscale image
comes back as a float ("F") image in [0, 1] instead, which :func:`to_unit_tensor` and
:func:`preprocess` (which uses it) turn into tensors without rounding to 8 bits.

Example
-------
>>> from whiteboxdl.data.images import load_image, preprocess, example_images
>>> img = load_image(example_images()["cat"])
>>> x = preprocess(img)            # (1, 3, 224, 224) in [-1, 1]
>>> tuple(x.shape), float(x.min()) >= -1, float(x.max()) <= 1
((1, 3, 224, 224), True, True)
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from whiteboxdl.validation import check_choice, check_number

#: Images with more pixels than this are refused (PIL's decompression-bomb guard is 2x this).
MAX_PIXELS = 40_000_000

ImageLike = Union[str, Path, bytes, Image.Image, np.ndarray]
EXAMPLES_DIR = Path(__file__).with_name("examples")


#: PIL modes with more than 8 bits per (greyscale) pixel: 16-bit, 32-bit integer and float.
DEEP_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _unit_grey(img: Image.Image) -> np.ndarray:
    """A deep-mode image's pixels on the scale it was saved on, as float32 in [0, 1]: integer
    modes / 65535 (the 16-bit range); float as it is if in [0, 1], / 255 if every value is a
    whole number in 0..255 (an 8-bit image converted to float, as PIL's ``convert("F")`` does);
    ``ValueError`` for NaN, inf or any other values."""
    arr = np.asarray(img, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("image contains NaN or infinite values")
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if img.mode == "F":
        if 0 <= lo and hi <= 1:
            return arr.astype(np.float32)
        if 0 <= lo and hi <= 255 and np.array_equal(arr, arr.round()):
            return (arr / 255).astype(np.float32)
        raise ValueError(f"float images must lie in [0, 1] (or hold whole numbers in 0..255), "
                         f"got range [{lo:.3g}, {hi:.3g}]; rescale it first")
    if lo < 0 or hi > 65535:
        raise ValueError(f"integer image values {lo:g}..{hi:g} are outside the 16-bit range "
                         "0..65535; save it with 8 or 16 bits per channel")
    return (arr / 65535).astype(np.float32)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (deep modes on their absolute scale); transparency is
    composited on white."""
    if img.mode in DEEP_MODES:
        img = Image.fromarray((_unit_grey(img) * 255).round().astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
    """A numpy image as PIL: uint8 as is, greyscale uint16 as 16-bit, greyscale float as a float
    ("F") image, colour float rounded to 8 bits; floats must be finite and in [0, 1]."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("image array contains NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(f"float image arrays must lie in [0, 1], got range "
                             f"[{array.min():.3g}, {array.max():.3g}]")
        if array.ndim == 2:
            return Image.fromarray(array.astype(np.float32))
        array = (array * 255).round().astype(np.uint8)
    elif array.dtype == np.uint16 and array.ndim == 2:
        return Image.fromarray(array)  # I;16
    elif array.dtype != np.uint8:
        raise ValueError(f"integer image arrays must be uint8 (or uint16 greyscale), got "
                         f"{array.dtype} with shape {array.shape}")
    return Image.fromarray(array)


def load_image(source: ImageLike, max_pixels: int = MAX_PIXELS, *,
               keep_depth: bool = False) -> Image.Image:
    """Open an image from a path, bytes, PIL image or numpy array and return it as 8-bit RGB.

    Values keep their absolute scale (a 16-bit grey value v becomes ``round(v / 65535 * 255)``,
    never stretched to the full range). With ``keep_depth``, 16-bit, 32-bit integer and float
    greyscale images are returned as a float ("F") image in [0, 1] instead, without rounding.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for anything that is not a
    decodable image, has zero size or more than ``max_pixels`` pixels (decompression bombs), or
    holds NaN/infinite values or values off its scale (floats outside [0, 1]).

    Example
    -------
    >>> import numpy as np
    >>> grey16 = np.full((2, 2), 40000, np.uint16)
    >>> load_image(grey16).getpixel((0, 0))              # 40000/65535 of 255
    (156, 156, 156)
    >>> round(load_image(grey16, keep_depth=True).getpixel((0, 0)), 6)
    0.610361
    """
    if isinstance(source, np.ndarray):
        img = _from_array(source)
    elif isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"image file not found: {path}")
            raw, name = path.read_bytes(), str(path)
        elif isinstance(source, (bytes, bytearray)):
            raw, name = bytes(source), "<uploaded bytes>"
        else:
            raise ValueError(f"cannot load an image from a {type(source).__name__}; pass a path, "
                             "bytes, a PIL image or a numpy array")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(io.BytesIO(raw))
                if img.width * img.height > max_pixels:
                    raise ValueError(f"{name}: image of {img.width}x{img.height} pixels is larger "
                                     f"than the limit of {max_pixels:,} pixels; downscale it first")
                img.load()
            except (UnidentifiedImageError, Image.DecompressionBombError,
                    Image.DecompressionBombWarning, OSError, SyntaxError) as exc:
                raise ValueError(f"{name}: not a readable image file ({exc}). Use PNG, JPEG, "
                                 "BMP, GIF, TIFF or WebP.") from exc
        img = ImageOps.exif_transpose(img)
    if img.width == 0 or img.height == 0:
        raise ValueError("image has zero width or height")
    if img.width * img.height > max_pixels:
        raise ValueError(f"image of {img.width}x{img.height} pixels exceeds {max_pixels:,} pixels")
    if keep_depth and img.mode in DEEP_MODES:
        return Image.fromarray(_unit_grey(img))  # float32: mode F
    return _to_rgb(img)


def resize_image(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Bicubic resize to ``(width, height)``; float ("F") images are clipped back to [0, 1]
    (bicubic filtering can overshoot a little at edges)."""
    out = img.resize(size, Image.Resampling.BICUBIC)
    if out.mode == "F":
        out = Image.fromarray(np.clip(np.asarray(out), 0.0, 1.0).astype(np.float32))
    return out


def resize_and_crop(img: Image.Image, size: int = 224, resize: int = 256) -> Image.Image:
    """The paper's geometry: square images -> ``size``; others shorter side ``resize``, centre crop."""
    size = check_number("size", size, low=1, integer=True)
    shorter = check_number("resize", resize, low=1, integer=True)
    if shorter < size:
        raise ValueError(f"need size <= resize, got size={size}, resize={shorter}")
    if img.width == img.height:
        return resize_image(img, (size, size))
    scale = shorter / min(img.width, img.height)
    w, h = max(shorter, round(img.width * scale)), max(shorter, round(img.height * scale))
    img = resize_image(img, (w, h))
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_unit_tensor(img: Image.Image, channels: int = 3) -> torch.Tensor:
    """PIL image -> float tensor (1, channels, H, W) in [0, 1], values on their absolute scale.

    8-bit images / 255 (``channels=1``: their luma); 16-bit and float ("F") greyscale images
    without rounding (/ 65535, or as they are; NaN or values outside [0, 1] raise
    ``ValueError``), repeated over ``channels``.

    Example
    -------
    >>> from PIL import Image
    >>> x = to_unit_tensor(Image.new("I;16", (2, 2), 40000))
    >>> x.shape, abs(float(x[0, 0, 0, 0]) - 40000 / 65535) < 1e-7
    (torch.Size([1, 3, 2, 2]), True)
    """
    channels = check_choice("channels", channels, (1, 3))
    if img.mode in DEEP_MODES:
        grey = torch.from_numpy(_unit_grey(img))[None, None]
        return grey.repeat(1, channels, 1, 1)
    arr = np.asarray(img.convert("RGB" if channels == 3 else "L"), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(arr)
    tensor = tensor.permute(2, 0, 1) if channels == 3 else tensor[None]
    return tensor.unsqueeze(0).contiguous()


def unit_to_signed(x: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] to [-1, 1]."""
    return x * 2 - 1


def signed_to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map [-1, 1] to [0, 1]."""
    return (x + 1) / 2


def preprocess(source: ImageLike, size: int = 224, resize: int = 256) -> torch.Tensor:
    """Load ``source`` and return the paper's input: (1, 3, size, size) in [-1, 1].

    16-bit and float greyscale images keep their full precision (``load_image(...,
    keep_depth=True)``): a constant 16-bit value v maps to ``2 * v / 65535 - 1``.
    """
    return unit_to_signed(to_unit_tensor(resize_and_crop(load_image(source, keep_depth=True),
                                                         size, resize)))


def to_pil(x: torch.Tensor, signed: bool = True) -> Image.Image:
    """(3,H,W) / (1,H,W) / (1,3,H,W) tensor in [-1,1] (or [0,1] if ``signed=False``) -> PIL image."""
    x = x.detach().float().cpu()
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {x.shape[0]}")
        x = x[0]
    if signed:
        x = signed_to_unit(x)
    arr = (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def example_images() -> dict[str, Path]:
    """The bundled example photos, by name (see ``data/examples/LICENSE.md`` for their origin)."""
    return {p.stem: p for p in sorted(EXAMPLES_DIR.glob("*.jpg"))}
