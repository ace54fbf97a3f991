"""The ``paper`` protocol's metrics equal Quantus 0.6 configured as the paper's code configures
it, on the very same perturbations, at the real 3×224² size; its baseline explainers equal
``quantus.explain``; its Focus mosaics are Quantus's ``build_single_mosaic``.

The Quantus side is written from the paper's code (``lib/evaluator.py``: the metric arguments,
Quantus defaults for the rest, e.g. ``normalise=True`` and the ``"black"`` baseline); our side
takes every number from ``get_protocol("paper")``, so a wrong preset fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from whiteboxdl.quality import metrics as M
from whiteboxdl.quality.explainers import get_explainer, seed_global
from whiteboxdl.quality.focus import focus_score, make_mosaics
from whiteboxdl.quality.metric_registry import compute_metric, compute_shared, get_metric
from whiteboxdl.quality.protocols import PAPER_SUMMED, get_protocol, resolve

qb = pytest.importorskip("whiteboxdl.quality.quantus_bridge")
quantus = pytest.importorskip("quantus")
TOL = dict(rtol=1e-5, atol=1e-5)
PAPER = get_protocol("paper")
D = 3 * 224 * 224


def _cheap_imagenet_cnn(classes: int = 10, seed: int = 0) -> nn.Module:
    """A 224² RGB classifier cheap enough for a few hundred Quantus forward passes."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.AvgPool2d(8), nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, classes)).eval()


@pytest.fixture(scope="module")
def setup():
    model = _cheap_imagenet_cnn()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 224, 224, generator=g) * 2 - 1               # [−1, 1]
    y = torch.tensor([3, 7])
    per_channel = get_explainer("Gradient")(model, x, y)
    summed = per_channel.sum(1, keepdim=True)                         # what quantus.explain gives
    return model, x, y, per_channel, summed


def _opts(metric: str) -> dict:
    return resolve(metric, PAPER.metric_options, PAPER.metric_variants)[1]


def _maps(setup):
    """(ours (N, 3, H, W), Quantus's input) pairs: a per-channel map and a summed map."""
    _, x, _, per_channel, summed = setup
    return [(per_channel, per_channel), (summed.expand_as(x).contiguous(), summed)]


def test_the_preset_holds_the_papers_numbers():
    assert PAPER.metric_options["Infidelity"] == {"scheme": "blocks", "patch_sizes": [56],
                                                  "repeats": 5, "uniform": [-1.0, 1.0]}
    assert _opts("Infidelity-112+56")["patch_sizes"] == [112, 56]
    assert PAPER.metric_options["FaithfulnessCorrelation"] == {
        "subset_size": 12544, "nr_runs": 100, "baseline": "black"}
    assert PAPER.metric_options["FaithfulnessEstimate"] == {"features_in_step": 3136,
                                                            "baseline": "black"}
    assert PAPER.metric_options["MonotonicityCorrelation"] == {
        "features_in_step": 12544, "nr_samples": 10, "uniform": [0.0, 1.0]}
    assert PAPER.metric_options["MaxSensitivity"] == {"nr_samples": 10, "radius": 0.02}
    assert PAPER.metric_options["RandomLogit"] == {"similarity": "pearson"}
    assert set(PAPER_SUMMED) == {k for k, v in PAPER.options.items() if v.get("reduce_channels")}


@pytest.mark.parametrize("metric", ["Infidelity", "Infidelity-112+56"])
def test_infidelity_blocks_equal_quantus_on_its_own_perturbations(setup, metric):
    model, x, y, _, _ = setup
    o = _opts(metric)
    blocks = [(224 // p) ** 2 for p in o["patch_sizes"]]
    for ours, theirs in _maps(setup):
        ref = qb.quantus_infidelity(model, x, y, torch.as_tensor(theirs),
                                    patch_sizes=o["patch_sizes"], repeats=o["repeats"],
                                    uniform=tuple(o["uniform"]), seed=11)
        values = qb.infidelity_values(11, 2, blocks, o["repeats"], tuple(o["uniform"]))
        got = M.infidelity_blocks(model, x, y, ours, patch_sizes=o["patch_sizes"],
                                  repeats=o["repeats"], values=values, optimal_scaling=False)
        np.testing.assert_allclose(got.numpy(), ref, rtol=2e-4, atol=1e-6)


def _cumulative_block_perturbations(x, values, patch):
    """I = x − x′ for each block of a repeat, written out: x′ keeps every earlier block."""
    n, c, h, w = x.shape
    per_side = w // patch
    out = []
    for i in range(n):
        xp = x[i].clone()
        rows = []
        for b in range(values.shape[1]):
            r, q = divmod(b, per_side)
            xp[:, r * patch:(r + 1) * patch, q * patch:(q + 1) * patch] = float(values[i, b])
            rows.append(x[i] - xp)
        out.append(torch.stack(rows))
    return torch.stack(out)


def test_optimal_scaling_equals_captum_on_the_same_block_perturbations(setup):
    from captum.metrics import infidelity as captum_infidelity

    model, x, y, per_channel, _ = setup
    values = M.block_values(2, [16], 5, -1.0, 1.0, torch.Generator().manual_seed(0))
    p = torch.cat([_cumulative_block_perturbations(x, v.float(), 56) for v in values], dim=1)

    def perturb(inputs):
        flat = p.reshape(-1, *x.shape[1:])
        return flat, inputs - flat

    ref = captum_infidelity(model, perturb, x, per_channel, target=y,
                            n_perturb_samples=p.shape[1], normalize=True)
    spec = get_metric("Infidelity")
    opts = _opts("Infidelity")
    shared = compute_shared(spec, model, x, y, options={**opts, "values": values},
                            domain=(-1.0, 1.0), generator=torch.Generator())
    got = compute_metric(spec, model, x, y, per_channel, options=opts, shared=shared,
                         explain=None, domain=(-1.0, 1.0), generator=None, num_classes=10)
    torch.testing.assert_close(got, ref.double(), rtol=1e-4, atol=1e-6)


def test_faithfulness_correlation_equals_quantus(setup):
    model, x, y, _, _ = setup
    o = _opts("FaithfulnessCorrelation")
    masks = qb.fc_masks(seed=3, n=2, d=D, nr_runs=o["nr_runs"], subset_size=o["subset_size"],
                        named_baseline=True)
    for ours, theirs in _maps(setup):
        # the paper's call: FaithfulnessCorrelation(nr_runs=100, subset_size=12544,
        # return_aggregate=False), everything else Quantus's default (black, normalise=True)
        ref = qb.quantus_faithfulness_correlation(model, x, y, torch.as_tensor(theirs),
                                                  nr_runs=100, subset_size=12544,
                                                  baseline="black", normalise=True, seed=3)
        got = M.faithfulness_correlation(model, x, y, ours, masks=masks,
                                         baseline=o["baseline"])
        np.testing.assert_allclose(got.numpy(), ref, **TOL)


def test_faithfulness_estimate_equals_quantus(setup):
    model, x, y, _, _ = setup
    o = _opts("FaithfulnessEstimate")
    for ours, theirs in _maps(setup):
        ref = qb.quantus_faithfulness_estimate(model, x, y, torch.as_tensor(theirs),
                                               features_in_step=12544 // 4, baseline="black",
                                               normalise=True)
        got = M.faithfulness_estimate(model, x, y, ours, **o)
        np.testing.assert_allclose(got.numpy(), ref, **TOL)


def test_monotonicity_correlation_equals_quantus(setup):
    model, x, y, _, _ = setup
    o = _opts("MonotonicityCorrelation")
    values = qb.mc_values(seed=5, n=2, steps=D // o["features_in_step"],
                          nr_samples=o["nr_samples"], domain=tuple(o["uniform"]))
    for ours, theirs in _maps(setup):
        # MonotonicityCorrelation(nr_samples=10, features_in_step=12544): uniform in [0, 1]
        ref = qb.quantus_monotonicity_correlation(model, x, y, torch.as_tensor(theirs),
                                                  features_in_step=12544, nr_samples=10,
                                                  domain=(0.0, 1.0), normalise=True, seed=5)
        got = M.monotonicity_correlation(model, x, y, ours, values=values,
                                         features_in_step=o["features_in_step"])
        np.testing.assert_allclose(got.numpy(), ref, **TOL)


def test_max_sensitivity_equals_quantus(setup):
    model, x, y, _, _ = setup
    o = _opts("MaxSensitivity")
    summed = get_explainer("Gradient", reduce_channels=True)

    def explain(inputs, targets):
        return summed(model, inputs, targets)

    def explain_quantus(inputs, targets):                       # quantus.explain's (N, 1, H, W)
        return explain(inputs, targets)[:, :1]

    a = explain(x, y)
    noise = qb.maxsens_noise(seed=7, shape=tuple(x.shape), nr_samples=o["nr_samples"],
                             radius=o["radius"])
    ref = qb.quantus_max_sensitivity(model, x, y, a[:, :1], explain_quantus, nr_samples=10,
                                     radius=0.02, seed=7)
    np.testing.assert_allclose(M.max_sensitivity(explain, x, y, a, noise=noise).numpy(), ref,
                               **TOL)


def test_random_logit_pearson_equals_quantus():
    model = _cheap_imagenet_cnn(classes=1000)
    x = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 2 - 1
    y = torch.tensor([0, 500, 999])
    grad = get_explainer("Gradient", reduce_channels=True)

    def explain(inputs, targets):
        return grad(model, inputs, targets)

    a = explain(x, y)
    ref = qb.quantus_random_logit(model, x, y, a[:, :1], lambda i, t: explain(i, t)[:, :1],
                                  num_classes=1000, similarity="pearson", seed=42)
    other = qb.random_logit_classes(y, 1000, seed=42)
    got = M.random_logit(explain, x, y, a, num_classes=1000, other=other,
                         **_opts("RandomLogit"))
    np.testing.assert_allclose(got.numpy(), ref, **TOL)


def test_focus_mosaics_and_scores_equal_quantus(setup):
    from quantus.functions.mosaic_func import build_single_mosaic

    model, x, _, _, _ = setup
    pool_x = torch.cat([x, -x, x.flip(-1), x * 0.5])
    pool_y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    o = _opts("Focus")
    mosaics, quads = make_mosaics(pool_x, pool_y, torch.arange(8),
                                  torch.Generator().manual_seed(0),
                                  tiles=o["tiles"], layout=o["layout"])
    assert mosaics.shape == (8, 3, 448, 448)
    for i in range(8):
        # the anchor twice at the flagged quadrants; each other quadrant one whole pool image
        tiles = [mosaics[i, :, r:r + 224, c:c + 224] for r in (0, 224) for c in (0, 224)]
        sources = []
        for q, t in enumerate(tiles):
            match = [j for j in range(8) if torch.equal(pool_x[j], t)]
            assert len(match) == 1
            sources.append(match[0])
            assert (sources[-1] == i) == bool(quads[i, q])
        np.testing.assert_array_equal(
            build_single_mosaic([pool_x[j].numpy() for j in sources]), mosaics[i].numpy())
    a = get_explainer("Gradient")(model, mosaics, torch.zeros(8, dtype=torch.long))
    ref = qb.quantus_focus(model, mosaics, torch.zeros(8, dtype=torch.long), a, quads)
    np.testing.assert_allclose(focus_score(mosaics, a, quads, relevance=o["relevance"]).numpy(),
                               ref, **TOL)


def test_same_image_mosaics_draw_distractor_classes_uniformly():
    pool_y = torch.tensor([0] * 30 + [1] + [2])          # class 0 crowds the pool
    pool_x = torch.arange(32.0).view(32, 1, 1, 1).expand(32, 1, 2, 2).contiguous()
    mosaics, quads = make_mosaics(pool_x, pool_y, torch.full((300,), 31),
                                  torch.Generator().manual_seed(0), tiles="full",
                                  layout="same-image")
    target_pixels = quads.view(300, 2, 2).repeat_interleave(2, 1).repeat_interleave(2, 2)
    distractors = mosaics[:, 0][~target_pixels]
    assert torch.all(mosaics[:, 0][target_pixels] == 31)   # the anchor (class 2) itself
    share_class_1 = (distractors == 30).float().mean()     # class 0 has 30 images, class 1 one
    assert torch.all(quads.sum(1) == 2)
    assert 0.4 < float(share_class_1) < 0.6              # classes, not images, are uniform


@pytest.mark.parametrize("name, method", [("Gradient", "Gradient"),
                                          ("IntegratedGradients", "IntegratedGradients"),
                                          ("DeepLift", "DeepLift"),
                                          ("GradientShap", "GradientShap")])
def test_baseline_explainers_equal_quantus_explain(setup, name, method):
    model, x, y, _, _ = setup
    seed_global(9)
    ours = get_explainer(name, domain=(-1.0, 1.0), **PAPER.options[name])(model, x, y)
    seed_global(9)
    ref = qb.quantus_explain(model, x, y, method)
    assert ref.shape == (2, 1, 224, 224)
    np.testing.assert_allclose(ours[:, :1].numpy(), ref, rtol=1e-4, atol=1e-6)
    assert torch.equal(ours[:, 0], ours[:, 2])                # the sum, in every channel


def test_guided_gradcam_equals_quantus_explain(setup):
    model, x, y, _, _ = setup
    ours = get_explainer("GuidedGradCam", **PAPER.options["GuidedGradCam"])(model, x, y)
    ref = quantus.explain(model, x.numpy(), y.numpy(), method="GuidedGradCam",
                          gc_layer=model[4], device="cpu")
    np.testing.assert_allclose(ours[:, :1].numpy(), ref, rtol=1e-4, atol=1e-6)
