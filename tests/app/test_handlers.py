"""The app's request handlers called directly, checked against the library they wrap."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from whiteboxdl.app import handlers
from whiteboxdl.app.inputs import mnist_tensor


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def seven(mnist_available):
    if not mnist_available:
        pytest.skip("MNIST cache is empty: run `make test` (it fetches MNIST first)")
    img, label = handlers.mnist_digit(0)  # the first MNIST test image is a 7
    assert label == 7
    return img


def test_explain_mnist_matches_the_library(app_registry, mnist_cnn, pullbacks, seven):
    out = handlers.explain(app_registry, seven, "mnist-cnn", None, steps=5, alpha=1.0, eps=5.0,
                           temperature=0.3, gate="sigmoid", method="both")
    x = mnist_tensor(seven)
    with torch.no_grad():
        probs = mnist_cnn(x).softmax(1)[0]
    assert out.target == int(probs.argmax()) == 7              # auto target = the prediction
    assert list(out.top_input) == [f"{i} – {n}" for i, n in
                                   ((int(i), app_registry.spec("mnist-cnn").classes[int(i)])
                                    for i in probs.argsort(descending=True)[:5])]
    assert np.allclose(list(out.top_input.values()), probs.sort(descending=True).values[:5])
    assert out.input.size == (224, 224) and set(out.runs) == {"pullback", "gradient"}
    direct = pullbacks.PullbackAscent(mnist_cnn, steps=5, alpha=1.0, eps=5.0, clip="every",
                                      bounds=(0, 1), temperature=0.3).ascend(x, 7)
    spec = app_registry.spec("mnist-cnn")
    run = out.runs["pullback"]
    assert _png(run.perturbed) == _png(handlers.display(direct.perturbed, spec))
    assert _png(run.difference) == _png(handlers.display(direct.difference, spec, rescale=True))
    assert np.allclose(run.target_logits, direct.target_logits[:, 0].numpy())
    assert len(run.target_logits) == 6 and run.target_logits[-1] > run.target_logits[0]
    assert _png(run.difference) != _png(out.runs["gradient"].difference)
    assert run.perturbed.size == run.difference.size == (224, 224)


def test_counterfactual_target_raises_its_probability(app_registry, mnist_cnn, pullbacks, seven):
    out = handlers.explain(app_registry, seven, "MNIST CNN (this project, 10 digits)",
                           "3 – three", steps=10, alpha=1.0, eps=5.0, temperature=0.3,
                           gate="normal CDF")
    run = out.runs["pullback"]
    assert out.target == 3 and run.target_logits[-1] > run.target_logits[0] + 1
    assert run.top.get("3 – three", 0.0) > out.top_input.get("3 – three", 0.0)


@pytest.mark.parametrize("kwargs, words", [
    ({"steps": 0}, r"steps must be a whole number in \[1, 200\]"), ({"steps": 2.5}, "whole number"),
    ({"alpha": float("nan")}, "alpha must be a finite number"), ({"temperature": 0}, "temperature"),
    ({"gate": "relu"}, "gate must be one of"), ({"method": "lrp"}, "method must be one of"),
    ({"target": "10 – ten"}, "out of range"), ({"model": "alexnet"}, "unknown model"),
    ({"image": b"GIF89a broken"}, "not a readable image"),
])
def test_explain_rejects_bad_requests(app_registry, kwargs, words):
    request = dict(image=np.zeros((28, 28), dtype=np.uint8), model="mnist-cnn", target=None,
                   steps=2, alpha=1.0, eps=5.0, temperature=0.3, gate="sigmoid",
                   method="pullback")
    request.update(kwargs)
    with pytest.raises(ValueError, match=words):
        handlers.explain(app_registry, **request)


def test_concurrent_requests_equal_sequential_ones(app_registry, mnist_cnn, pullbacks, seven):
    temperatures = [0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.5, 3.0]

    def run(t):
        out = handlers.explain(app_registry, seven, "mnist-cnn", "2 – two", steps=3, alpha=1.0,
                               eps=5.0, temperature=t)
        return _png(out.runs["pullback"].perturbed), _png(out.runs["pullback"].difference)

    sequential = [run(t) for t in temperatures]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(run, temperatures))
    assert concurrent == sequential
    assert len({diff for _, diff in sequential}) == len(temperatures)  # settings really differ


def test_resnet50_gives_224_images_and_imagenet_top5(app_registry, pullbacks):
    from whiteboxdl.data.images import example_images
    from whiteboxdl.data.imagenet import imagenet_classes

    out = handlers.explain(app_registry, example_images()["cat"], "resnet50", "281 – tabby",
                           steps=1, alpha=20, eps=100, temperature=0.3)
    run = out.runs["pullback"]
    assert out.input.size == run.perturbed.size == run.difference.size == (224, 224)
    names = {f"{i} – {n}" for i, n in enumerate(imagenet_classes())}
    assert len(out.top_input) == 5 and set(out.top_input) <= names
    assert len(run.target_logits) == 2


def test_whitebox_view_reads_the_semantic_network(semantic_model, needs_mnist):
    img, _ = handlers.mnist_digit(int((handlers._mnist_test()[1] == 3).nonzero()[0, 0]))
    x = handlers.semantic_input(img)
    view = handlers.whitebox_view(semantic_model, x)
    with torch.no_grad():
        probs = semantic_model(x).softmax(1)[0]
    names = [str(c) for c in semantic_model.class_names]
    assert list(view.probs) == names and np.allclose(list(view.probs.values()), probs)
    assert view.prediction == names[int(probs.argmax())]
    assert len(view.poses) == len(names) and len(view.steps) == 3
    assert all(im.size == (handlers.MAP_SIZE,) * 2 for im, _ in view.steps + view.poses)
    assert view.figure is not None and view.figure.width > 400


def test_attack_stays_in_the_eps_ball(semantic_model, needs_mnist):
    img, label = handlers.sample_semantic_digit(semantic_model)
    x = handlers.semantic_input(img)
    x_adv, y = handlers.whitebox_attack(semantic_model, x, 0.3, None)
    with torch.no_grad():
        assert y == int(semantic_model(x).argmax())
    assert float((x_adv - x).abs().max()) <= 0.3 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with pytest.raises(ValueError, match="not a class"):
        handlers.whitebox_attack(semantic_model, x, 0.3, "7")


@pytest.mark.parametrize("mode", ["I;16", "P", "LA", "CMYK", "1", "F"])
def test_odd_image_modes_are_explained(app_registry, mnist_cnn, pullbacks, seven, mode):
    arr = np.asarray(seven.convert("L"))
    img = Image.fromarray(arr).convert(mode) if mode != "I;16" else Image.fromarray(
        arr.astype(np.uint16) * 257)
    raw = io.BytesIO()
    img.save(raw, format="TIFF")          # TIFF stores every one of these modes
    out = handlers.explain(app_registry, raw.getvalue(), "mnist-cnn", None, steps=1,
                           alpha=1.0, eps=5.0)
    assert out.target == 7 and out.runs["pullback"].perturbed.size == (224, 224)


def test_attack_without_the_robustness_package_explains_itself(semantic_model, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "whiteboxdl.robustness.attacks", None)  # import fails
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(ValueError, match="APGD-CE needs whiteboxdl.robustness.attacks"):
        handlers.whitebox_attack(semantic_model, x, 0.3, None)


@pytest.mark.parametrize("index", ["3", None, 3.5, True, -1, 10_000])
def test_mnist_digit_refuses_anything_but_a_valid_index(index, needs_mnist):
    with pytest.raises(ValueError, match="MNIST test index must be a whole number in"):
        handlers.mnist_digit(index)


def test_mnist_digit_accepts_numpy_and_float_whole_numbers(needs_mnist):
    assert handlers.mnist_digit(np.int64(0))[1] == handlers.mnist_digit(0.0)[1] == 7


@pytest.mark.parametrize("call", ["whitebox_view", "attack_view"])
def test_whitebox_handlers_refuse_a_missing_model_or_image(semantic_model, call):
    handler = getattr(handlers, call)
    extra = (0.3,) if call == "attack_view" else ()
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(ValueError, match="needs a semantic-feature network.*NoneType"):
        handler(None, x, *extra)
    with pytest.raises(ValueError, match="no image given"):
        handler(semantic_model, None, *extra)
    with pytest.raises(ValueError, match=r"one \(1, 1, 28, 28\) tensor.*\(28, 28\)"):
        handler(semantic_model, x[0, 0], *extra)
    with pytest.raises(ValueError, match="finite values in"):
        handler(semantic_model, torch.full((1, 1, 28, 28), float("nan")), *extra)
    with pytest.raises(ValueError, match="finite values in"):
        handler(semantic_model, torch.full((1, 1, 28, 28), 2.0), *extra)


def test_every_rules_settings_reach_the_explanation(app_registry, mnist_cnn, pullbacks, seven):
    """The advanced panel's settings (any rule's temperature, the max-pool variant) are used."""
    settings = {"maxpool_temperature": 2.0, "maxpool_rule": "detached", "rules": ["relu", "maxpool"]}
    out = handlers.explain(app_registry, seven, "mnist-cnn", 3, steps=2, alpha=1.0, eps=5.0,
                           temperature=0.3, settings=settings)
    direct = pullbacks.PullbackAscent(mnist_cnn, steps=2, alpha=1.0, eps=5.0, clip="every",
                                      bounds=(0, 1), **settings).ascend(mnist_tensor(seven), 3)
    assert np.allclose(out.runs["pullback"].target_logits, direct.target_logits[:, 0].numpy())
    default = handlers.explain(app_registry, seven, "mnist-cnn", 3, steps=2, alpha=1.0, eps=5.0)
    assert not np.allclose(out.runs["pullback"].target_logits,
                           default.runs["pullback"].target_logits)
    for bad, words in (({"maxpool_temperature": 1e-9},
                        r"maxpool temperature must be a finite number in \[0.001, 100\]"),
                       ({"silu_temprature": 1.0}, "did you mean silu_temperature"),
                       ({"rules": ["nope"]}, "unknown rule")):
        with pytest.raises(ValueError, match=words):
            handlers.explain(app_registry, seven, "mnist-cnn", 3, steps=1, settings=bad)
