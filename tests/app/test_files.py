"""Output images handed to Gradio as atomically written, content-named PNG files."""

from __future__ import annotations

import os
import threading

import numpy as np
from PIL import Image

from whiteboxdl.app.files import image_file, images_as_files


def _noise(seed: int, size=(28, 28)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8))


def test_image_file_round_trips_and_is_named_by_content():
    a, b = _noise(0), _noise(1)
    path = image_file(a)
    assert Image.open(path).tobytes() == a.tobytes() and path.endswith(".png")
    assert image_file(a.copy()) == path                  # same pixels, same file
    assert image_file(b) != path


def test_images_inside_outputs_become_paths_and_the_rest_is_untouched():
    a, b = _noise(2), _noise(3)
    update = {"choices": ["x"], "__type__": "update"}
    out = images_as_files([(a, b), [(a, "caption")], "text", 3, update, None])
    (pair, gallery, text, number, same_update, none) = out
    assert isinstance(pair, tuple) and [Image.open(p).tobytes() for p in pair] == \
        [a.tobytes(), b.tobytes()]
    assert gallery[0][1] == "caption" and Image.open(gallery[0][0]).tobytes() == a.tobytes()
    assert (text, number, same_update, none) == ("text", 3, update, None)


def test_a_reader_never_sees_a_partial_file_while_the_same_image_is_rewritten():
    """Eight writers produce the same image over and over (as concurrent requests with the same
    input do); every read of its path meanwhile sees the whole PNG, and no staging file is left."""
    image = _noise(4, (256, 256))
    path = image_file(image)
    size = os.path.getsize(path)
    os.remove(path)                      # make every writer below take the write-and-rename path
    stop, sizes = threading.Event(), []

    def write():
        for _ in range(40):
            image_file(image)
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

    def read():
        while not stop.is_set():
            try:
                with open(path, "rb") as f:
                    sizes.append(len(f.read()))
            except FileNotFoundError:
                pass

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write) for _ in range(8)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert sizes and set(sizes) == {size}
    assert not [p for p in os.listdir(os.path.dirname(path)) if p.endswith(".part")]
