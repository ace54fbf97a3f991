"""The app's HTTP API driven by gradio_client against the app on a loopback port."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image


def test_server_binds_to_loopback_only(app_url):
    assert app_url.startswith("http://127.0.0.1:")


def test_corrupt_upload_returns_an_error_message(client, tmp_path):
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n definitely not a PNG body")
    with pytest.raises(AppError, match="Invalid image: .*not a readable image"):
        client.predict(handle_file(str(bad)), "MNIST CNN (this project, 10 digits)",
                       "auto – predicted class", 2, 1.0, 5.0, 0.3, "sigmoid", "pullback",
                       api_name="/explain")


def test_sample_returns_an_mnist_test_digit(client, needs_mnist):
    img_path, info = client.predict("MNIST CNN (this project, 10 digits)", api_name="/sample")
    img = Image.open(img_path)
    assert img.size == (28, 28) and info.startswith("MNIST test image #")
    from whiteboxdl.app.handlers import mnist_digit

    index = int(info.split("#")[1].split()[0])
    assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(mnist_digit(index)[0]))
