"""The app's HTTP API driven by gradio_client against the app on a loopback port."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image


def test_server_binds_to_loopback_only(app_url):
    assert app_url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("name, words", [("corrupt.png", "not a readable image"),
                                         ("huge.png", "larger than the limit")])
def test_bad_upload_returns_an_error_message(client, tmp_path, name, words):
    bad = tmp_path / name
    if name == "huge.png":  # 10000 x 5000 pixels: a small file that would decode to 50 MP
        Image.new("L", (10000, 5000)).save(bad)
    else:
        bad.write_bytes(b"\x89PNG\r\n\x1a\n definitely not a PNG body")
    with pytest.raises(AppError, match=f"Invalid image: .*{words}"):
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


MNIST = "MNIST CNN (this project, 10 digits)"


def _explain(client, image, temperature=0.3, method="pullback", model=MNIST, target="3 – three",
             steps=3, alpha=1.0, eps=5.0):
    return client.predict(handle_file(str(image)), model, target, steps, alpha, eps,
                          temperature, "sigmoid", method, api_name="/explain")


def _top5(label: dict) -> list[tuple[str, float]]:
    return [(c["label"], c["confidence"]) for c in label["confidences"]]


@pytest.fixture(scope="module")
def digit_file(tmp_path_factory, mnist_available):
    if not mnist_available:
        pytest.skip("MNIST cache is empty: run `make test` (it fetches MNIST first)")
    from whiteboxdl.app.handlers import mnist_digit

    path = tmp_path_factory.mktemp("upload") / "seven.png"
    mnist_digit(0)[0].save(path)
    return path


def test_explain_endpoint_returns_sliders_top5_and_logits(client, mnist_cnn, pullbacks,
                                                          digit_file):
    out = _explain(client, digit_file, method="both", steps=4)
    pb_diff, pb_input, pb_top, gr_diff, gr_input, gr_top, top_input, plot, table, status = out
    for pair in (pb_diff, pb_input, gr_diff, gr_input):
        assert [Image.open(p).size for p in pair] == [(224, 224), (224, 224)]
    for label in (pb_top, gr_top, top_input):
        top = _top5(label)
        assert len(top) == 5 and all(0 <= p <= 1 for _, p in top)
        assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert _top5(top_input)[0][0] == "7 – seven"
    assert table["headers"] == ["step", "pullback", "gradient"] and len(table["data"]) == 5
    assert table["data"][-1][1] > table["data"][0][1]          # the pullback ascent raises it
    assert plot["type"] == "matplotlib" and "target **3 – three**" in status


def test_explain_endpoint_on_resnet50(client, pullbacks):
    from whiteboxdl.data.images import example_images

    out = _explain(client, example_images()["coffee"], model="ResNet50 (torchvision, ImageNet)",
                   target="967 – espresso",
                   steps=1, alpha=20, eps=100)
    assert [Image.open(p).size for p in out[0]] == [(224, 224)] * 2
    assert out[3] is None and len(_top5(out[6])) == 5


def test_concurrent_api_requests_equal_sequential(client, app_registry, mnist_cnn, pullbacks,
                                                  digit_file):
    """Eight requests in flight at once (the server runs up to 4 at a time, sharing one model)
    return exactly the images of the same requests run one by one through the handler."""
    from whiteboxdl.app.handlers import explain

    temperatures = [0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.5, 3.0]
    jobs = [client.submit(handle_file(str(digit_file)), MNIST, "3 – three", 3, 1.0, 5.0, t,
                          "sigmoid", "pullback", api_name="/explain") for t in temperatures]
    concurrent = [[Image.open(p).tobytes() for p in job.result(timeout=120)[0]] for job in jobs]
    sequential = []
    for t in temperatures:
        run = explain(app_registry, digit_file, MNIST, "3 – three", 3, 1.0, 5.0, t).runs["pullback"]
        sequential.append([run.perturbed.tobytes(), run.difference.tobytes()])
    assert concurrent == sequential
    assert len({diff for _, diff in sequential}) == len(temperatures)   # settings really differ


def test_whitebox_and_attack_endpoints(client, semantic_model, needs_mnist):
    img_path, info = client.predict(api_name="/whitebox_sample")
    assert Image.open(img_path).size == (28, 28) and info.startswith("MNIST test image")
    steps, poses, probs, note, figure, choices = client.predict(handle_file(img_path),
                                                                api_name="/whitebox")
    assert Image.open(figure).width > 400             # the inspection figure of the semantic branch
    assert len(steps) == 3 and len(poses) == len(semantic_model.class_names)
    assert all(Image.open(item["image"]).size == (168, 168) for item in steps + poses)
    assert {c["label"] for c in probs["confidences"]} == set(semantic_model.class_names)
    steps, poses, probs, note, figure = client.predict(handle_file(img_path), 0.3,
                                                       "auto – predicted class", api_name="/attack")
    assert "APGD-CE at ε = 0.3" in note and len(poses) == len(semantic_model.class_names)
    assert len(steps) == 4 and steps[0]["caption"].startswith("perturbation (max |δ| = 0.")
