"""Loading images safely and the paper's preprocessing into the [-1, 1] range.

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

#: Images with more pixels than this are refused (PIL's decompression-bomb guard is 2x this).
MAX_PIXELS = 40_000_000

ImageLike = Union[str, Path, bytes, Image.Image, np.ndarray]
EXAMPLES_DIR = Path(__file__).with_name("examples")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited on white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(scaled.round().astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def _from_array(array: np.ndarray) -> Image.Image:
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
        array = (array * 255).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ValueError(f"integer image arrays must be uint8, got {array.dtype}")
    return Image.fromarray(array)


def load_image(source: ImageLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image from a path, bytes, PIL image or numpy array and return it as RGB.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for anything that is not a
    decodable image, has zero size or more than ``max_pixels`` pixels (decompression bombs).
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
    return _to_rgb(img)


def resize_and_crop(img: Image.Image, size: int = 224, resize: int = 256) -> Image.Image:
    """The paper's geometry: square images -> ``size``; others shorter side ``resize``, centre crop."""
    if size <= 0 or resize < size:
        raise ValueError(f"need 0 < size <= resize, got size={size}, resize={resize}")
    if img.width == img.height:
        return img.resize((size, size), Image.BICUBIC)
    scale = resize / min(img.width, img.height)
    w, h = max(resize, round(img.width * scale)), max(resize, round(img.height * scale))
    img = img.resize((w, h), Image.BICUBIC)
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def to_unit_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float tensor (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def unit_to_signed(x: torch.Tensor) -> torch.Tensor:
    """Map [0, 1] to [-1, 1]."""
    return x * 2 - 1


def signed_to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map [-1, 1] to [0, 1]."""
    return (x + 1) / 2


def preprocess(source: ImageLike, size: int = 224, resize: int = 256) -> torch.Tensor:
    """Load ``source`` and return the paper's input: (1, 3, size, size) in [-1, 1]."""
    return unit_to_signed(to_unit_tensor(resize_and_crop(load_image(source), size, resize)))


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
