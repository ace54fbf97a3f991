"""Turning whatever a user sends (uploads, drawings, numbers) into validated model inputs.

Every function raises ``ValueError`` with a message meant for the person using the app; the UI
shows it as is.

Example
-------
>>> from PIL import Image
>>> from whiteboxdl.app.inputs import mnist_tensor, parse_target
>>> x = mnist_tensor(Image.new("L", (280, 280), 255))   # a blank white sheet
>>> tuple(x.shape), float(x.max())
((1, 1, 28, 28), 0.0)
>>> parse_target("207 – golden retriever", n_classes=1000)
207
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from whiteboxdl.data.images import load_image

#: Uploads larger than this many bytes are refused before decoding.
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
#: Side of the box a drawn digit is scaled into, inside the 28x28 frame (as in MNIST itself).
DIGIT_BOX = 20
AUTO_TARGET = "auto – predicted class"


def image_from_upload(value: Any) -> Image.Image:
    """Decode an upload (path, bytes, ``data:`` URL, PIL image, array or editor dict) to RGB.

    Raises ``ValueError`` for a missing value, non-images, oversized files, NaNs and odd arrays.
    """
    if value is None:
        raise ValueError("no image given: upload one, pick an example or sample from the test set")
    if isinstance(value, dict):  # gr.ImageEditor / Sketchpad value
        value = value.get("composite")
        if value is None:
            raise ValueError("the drawing is empty: draw a digit first")
    if isinstance(value, str) and value.startswith("data:"):
        try:
            value = base64.b64decode(value.split(",", 1)[1], validate=False)
        except (IndexError, binascii.Error) as exc:
            raise ValueError(f"the uploaded data URL is not valid base64 ({exc})") from None
    if isinstance(value, (str, Path)):
        path = Path(value)
        if path.is_file() and path.stat().st_size > MAX_UPLOAD_BYTES:
            raise ValueError(f"the uploaded file has {path.stat().st_size / 2**20:.1f} MiB; the "
                             f"limit is {MAX_UPLOAD_BYTES / 2**20:.0f} MiB")
    if isinstance(value, (bytes, bytearray)) and len(value) > MAX_UPLOAD_BYTES:
        raise ValueError(f"the upload has {len(value) / 2**20:.1f} MiB; the limit is "
                         f"{MAX_UPLOAD_BYTES / 2**20:.0f} MiB")
    if isinstance(value, np.ndarray) and value.dtype != np.uint8 and np.issubdtype(
            value.dtype, np.integer):
        value = _integer_pixels(value)
    try:
        return load_image(value)
    except FileNotFoundError as exc:
        raise ValueError(f"the uploaded file is gone ({exc}); upload it again") from None


def _integer_pixels(array: np.ndarray) -> np.ndarray:
    """An integer array (e.g. int64 from a UI widget) on its own scale, never stretched: uint16
    and values above 255 as 16 bits (``/ 65535``), other values in 0..255 as 8 bits; negative or
    larger ones refused.

    >>> _integer_pixels(np.array([[0, 128]], dtype=np.int64)).dtype
    dtype('uint8')
    """
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if lo < 0 or hi > 65535:
        raise ValueError(f"integer image arrays must hold 8-bit (0..255) or 16-bit (0..65535) "
                         f"pixel values, got range [{lo}, {hi}]")
    if array.dtype != np.uint16 and hi <= 255:
        return array.astype(np.uint8)
    return array.astype(np.float64) / 65535


def _centre_digit(gray: np.ndarray) -> np.ndarray:
    """MNIST's own normalisation: fit the ink's bounding box into 20x20, centre of mass at 14,14."""
    rows, cols = np.nonzero(gray > 0.05)
    if rows.size == 0:
        return np.zeros((28, 28), dtype=np.float32)
    crop = gray[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.LANCZOS),
                       dtype=np.float32) / 255.0
    canvas = np.zeros((28, 28), dtype=np.float32)
    mass = small.sum()
    cy, cx = ((np.indices(small.shape) * small).reshape(2, -1).sum(1) / mass if mass > 0
              else (small.shape[0] / 2, small.shape[1] / 2))
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
    return canvas


def mnist_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB image -> (1, 1, 28, 28) in [0, 1], white digit on black as in MNIST.

    Light backgrounds (mean > 0.5, e.g. a drawing) are inverted. 28x28 images are used as they
    are; anything else is normalised like MNIST (ink bounding box scaled into 20x20, centred).
    """
    gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    if gray.mean() > 0.5:
        gray = 1.0 - gray
    if gray.shape != (28, 28):
        gray = _centre_digit(gray)
    return torch.from_numpy(np.ascontiguousarray(gray))[None, None]


def parse_target(value: Any, n_classes: int) -> int | None:
    """``"idx – name"``, ``"idx"`` or an int -> class index; the auto choice -> ``None``."""
    if value is None or (isinstance(value, str) and (value.strip() == "" or
                                                     value.startswith("auto"))):
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        index = int(value)
    else:
        head = str(value).strip().split(" ", 1)[0].split("–", 1)[0].strip()
        if not head.lstrip("-").isdigit():
            raise ValueError(f"target class {value!r} is not one of the listed classes; pick one "
                             "from the dropdown ('idx – name')")
        index = int(head)
    if not 0 <= index < n_classes:
        raise ValueError(f"target class index {index} is out of range for a model with "
                         f"{n_classes} classes (0..{n_classes - 1})")
    return index
