"""Hand output images to Gradio as PNG files written atomically.

Gradio (6.x) stores a returned ``PIL.Image`` in its cache under a name derived from the image's
bytes by truncating and rewriting that file. Two requests that produce the same image at the
same time (the same input shown in both, or two users sampling the same digit) then rewrite a
file that a client may be downloading, and the download fails with "Too little data for
declared Content-Length". A returned *path* is instead copied into the cache under a temporary
name and renamed into place. :func:`images_as_files` therefore writes every image to a PNG
named by its content, the same way, and returns paths.

Example
-------
>>> from PIL import Image
>>> path = images_as_files([Image.new("L", (2, 2))])[0]
>>> path.endswith(".png"), Image.open(path).size
(True, (2, 2))
"""

from __future__ import annotations

import atexit
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

_directory: Path | None = None


def _output_directory() -> Path:
    """One directory per process under the system temp dir (Gradio serves from there), removed
    at exit."""
    global _directory
    if _directory is None:
        _directory = Path(tempfile.mkdtemp(prefix="whiteboxdl-app-"))
        atexit.register(shutil.rmtree, _directory, ignore_errors=True)
    return _directory


def image_file(image: Image.Image) -> str:
    """Path of a PNG holding ``image``, named by its content; written under a temporary name and
    renamed, so a reader never sees a partial file."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    directory = _output_directory()
    path = directory / f"{hashlib.sha256(data).hexdigest()[:40]}.png"
    if not path.exists():
        fd, staging = tempfile.mkstemp(dir=directory, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, path)
    return str(path)


def images_as_files(value: Any) -> Any:
    """``value`` with every ``PIL.Image`` (also inside lists and tuples, e.g. gallery items and
    image-slider pairs) replaced by :func:`image_file`; everything else unchanged."""
    if isinstance(value, Image.Image):
        return image_file(value)
    if type(value) in (list, tuple):
        return type(value)(images_as_files(v) for v in value)
    return value
