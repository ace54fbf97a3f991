"""The explainer registry: analytic attributions on a linear model, options, validation."""

from __future__ import annotations

import pytest
import torch

from whiteboxdl.quality.explainers import (COUNTERPARTS, EXPLAINERS, ascent_alpha, get_explainer,
                                           last_conv_layer, parse_explainers, seed_global)


@pytest.fixture
def lin_batch(linear_model):
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([2, 0, 1])
    w = linear_model.linear.weight.detach()[y].view(3, 1, 8, 8)
    return x, y, w


@pytest.mark.parametrize("name, expected", [
    ("Gradient", lambda x, w: w),
    ("SmoothGrad", lambda x, w: w),              # noise cannot change a constant gradient
    ("GuidedBackprop", lambda x, w: w),          # no ReLU to guide
    ("IntegratedGradients", lambda x, w: x * w),  # (x − 0) ⊙ w
    ("DeepLift", lambda x, w: x * w),
])
def test_linear_model_attributions(linear_model, lin_batch, name, expected):
    x, y, w = lin_batch
    a = get_explainer(name)(linear_model, x, y)
    assert a.shape == x.shape
    torch.testing.assert_close(a, expected(x, w), rtol=1e-5, atol=1e-6)


def test_gradient_shap_completeness_is_bounded_by_its_baselines(linear_model, lin_batch):
    x, y, w = lin_batch
    seed_global(11)
    a = get_explainer("GradientShap")(linear_model, x, y)
    torch.manual_seed(11)
    noise = torch.rand(9, *x.shape[1:])                 # the explainer's baseline draws
    baselines = torch.cat([torch.zeros_like(x[:1]), noise])
    with torch.no_grad():
        fb = linear_model(baselines)[:, y].T             # (N, 10)
        fx = linear_model(x).gather(1, y[:, None])
    sums = a.flatten(1).sum(1)
    lo, hi = (fx - fb).amin(1), (fx - fb).amax(1)
    assert torch.all(sums >= lo - 1e-4) and torch.all(sums <= hi + 1e-4)
    seed_global(11)
    torch.testing.assert_close(get_explainer("GradientShap")(linear_model, x, y), a)  # seeded


def test_guided_gradcam_layer_choice(cnn, images):
    x, y = images
    assert last_conv_layer(cnn) == "3"
    a = get_explainer("GuidedGradCam")(cnn, x, y)
    b = get_explainer("GuidedGradCam", layer="0")(cnn, x, y)
    assert a.shape == x.shape and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="no layer 'nope'"):
        get_explainer("GuidedGradCam", layer="nope")(cnn, x, y)
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        get_explainer("GuidedGradCam")(torch.nn.Sequential(torch.nn.Flatten(),
                                                           torch.nn.Linear(784, 10)), x, y)


def test_registry_names_and_counterparts():
    assert EXPLAINERS[:3] == ("SoftPullback", "PullbackAscent", "SmoothPullback")
    assert COUNTERPARTS == {"SoftPullback": "Gradient", "PullbackAscent": "GradientAscent",
                            "SmoothPullback": "SmoothGrad"}
    assert parse_explainers("all") == list(EXPLAINERS)
    assert parse_explainers("Gradient, DeepLift") == ["Gradient", "DeepLift"]
    with pytest.raises(ValueError, match="unknown explainer 'Foo'"):
        parse_explainers("Gradient,Foo")


def test_ascent_step_is_the_specs_alpha_scaled():
    assert ascent_alpha(torch.zeros(1, 3, 224, 224), (-1.0, 1.0)) == pytest.approx(20.0)
    assert ascent_alpha(torch.zeros(1, 1, 28, 28), (0.0, 1.0)) == pytest.approx(0.7217, abs=1e-4)


def test_explainer_input_validation(linear_model, lin_batch):
    x, y, _ = lin_batch
    with pytest.raises(ValueError, match="expected a batch"):
        get_explainer("Gradient")(linear_model, x[0], y)
    with pytest.raises(ValueError, match="2 targets for 3 inputs"):
        get_explainer("Gradient")(linear_model, x, y[:2])
    with pytest.raises(ValueError, match="domain"):
        get_explainer("SmoothGrad", domain=(1.0, 0.0))


def test_pullback_explainers_on_a_linear_model(linear_model, lin_batch):
    # No ReLU: the pullback is the gradient, and an unclamped ascent moves K·α along w/‖w‖.
    x, y, w = lin_batch
    torch.testing.assert_close(get_explainer("SoftPullback")(linear_model, x, y), w)
    torch.testing.assert_close(get_explainer("SmoothPullback", samples=3)(linear_model, x, y), w,
                               rtol=1e-5, atol=1e-6)
    for name in ("PullbackAscent", "GradientAscent"):
        a = get_explainer(name, steps=3, alpha=0.5, clip=None)(linear_model, x, y)
        expected = 3 * 0.5 * w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        torch.testing.assert_close(a, expected, rtol=1e-5, atol=1e-6)
    # Clamped to the domain after every step: x + a stays in [0, 1].
    a = get_explainer("PullbackAscent", alpha=2.0, clip="every")(linear_model, x, y)
    assert (x + a).min() >= 0 and (x + a).max() <= 1


def test_pullbacks_differ_from_gradients_on_a_relu_network(cnn, images):
    x, y = images
    pb = get_explainer("SoftPullback")(cnn, x, y)
    g = get_explainer("Gradient")(cnn, x, y)
    cos = torch.nn.functional.cosine_similarity(pb.flatten(1), g.flatten(1))
    assert torch.all(cos < 0.999) and torch.all(cos > 0)       # related, not identical
    cold = get_explainer("SoftPullback", temperature=1e-4)(cnn, x, y)
    # T → 0 recovers the gradient up to the max-pool routing (soft there by its own temperature).
    assert torch.all(torch.nn.functional.cosine_similarity(cold.flatten(1), g.flatten(1)) >
                     cos)


def test_captum_rules_do_not_see_relu6(images):
    # Captum's DeepLift and guided backprop know nn.ReLU, not nn.ReLU6: on a ReLU6 network
    # (EfficientNet-Lite) DeepLift with a zero baseline is input × gradient and GuidedGradCam's
    # guided part is the plain gradient (a caveat of the ImageNet benchmarks).
    from captum.attr import LayerGradCam

    x, y = images
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.BatchNorm2d(6), torch.nn.ReLU6(),
        torch.nn.Conv2d(6, 8, 3, padding=1), torch.nn.ReLU6(), torch.nn.Flatten(),
        torch.nn.Linear(8 * 28 * 28, 10)).eval()
    with torch.no_grad():
        net[1].running_mean.normal_(0, 0.3)
    grad = get_explainer("Gradient")(net, x, y)
    torch.testing.assert_close(get_explainer("DeepLift")(net, x, y), x * grad, rtol=1e-5,
                               atol=1e-7)
    cam = LayerGradCam(net, net[3]).attribute(x, target=y, relu_attributions=True)
    cam = LayerGradCam.interpolate(cam, (28, 28))
    torch.testing.assert_close(get_explainer("GuidedGradCam")(net, x, y), cam * grad,
                               rtol=1e-5, atol=1e-7)
