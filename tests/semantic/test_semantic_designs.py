"""Ten-digit design options: grouped conv max, orientation / kernel channels, multi-channel affine
features, learnable logical poses, and the builder's size arguments, against plain references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from whiteboxdl.semantic.layers import (AffineSemantic, ConvSemantic, PosedLogical, conv_max,
                                        orientation_groups)
from whiteboxdl.semantic.network import SIZE_BOUNDS, semantic_mnist
from whiteboxdl.semantic.samplers import AffinePoses


def _grouped_reference(x, w, groups):
    """Plain conv2d over all kernels, reshaped into groups, max with autograd."""
    k = w.shape[0]
    out = F.conv2d(x, w, padding=w.shape[-1] // 2)
    out = out.view(out.shape[0], groups, k // groups, *out.shape[-2:])
    value, index = out.max(dim=2)
    return value, index + (torch.arange(groups) * (k // groups)).view(1, groups, 1, 1)


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_grouped_conv_max_equals_conv2d_in_value_index_and_gradient(groups):
    torch.manual_seed(groups)
    x = torch.randn(3, 2, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    value, index = conv_max(x, w, groups=groups)
    ref, ref_index = _grouped_reference(x, w, groups)
    torch.testing.assert_close(value, ref)
    assert torch.equal(index, ref_index)
    # a sparse upstream gradient (as after the layer's ReLU) on the no-index training path
    upstream = torch.randn_like(ref) * (torch.rand_like(ref) > 0.6)
    value = conv_max(x, w, return_index=False, groups=groups)[0]
    ours = torch.autograd.grad((value * upstream).sum(), (x, w))
    theirs = torch.autograd.grad((ref * upstream).sum(), (x, w))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


def test_grouped_conv_max_passes_gradcheck_and_rejects_bad_groups():
    torch.manual_seed(7)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: conv_max(a, b, groups=2)[0], (x, w),
                                    fast_mode=True)
    with pytest.raises(ValueError, match="groups must divide"):
        conv_max(x, w, groups=3)


def test_orientation_groups_partition_the_posed_kernels_by_orientation():
    groups = orientation_groups(3, 32, 4)
    assert groups.shape == (4, 24)
    assert sorted(groups.reshape(-1).tolist()) == list(range(96))  # every posed kernel once
    rotation = groups % 32
    for b in range(4):
        rots = set(rotation[b].tolist())
        assert all((r + 16) % 32 in rots for r in rots), "r and r + 180 deg share a bin"
        # its orientations (rotation mod 180 deg, in steps of 11.25 deg) are 4 cyclically
        # consecutive ones, i.e. one 45-degree bin
        orient = {r % 16 for r in rots}
        start = next(o for o in orient if (o - 1) % 16 not in orient)
        assert orient == {(start + i) % 16 for i in range(4)}
    with pytest.raises(ValueError, match="multiple of 2"):
        orientation_groups(2, 32, 5)


@pytest.mark.parametrize("channels", ["kernel", "orientation"])
def test_conv_semantic_channels_equal_explicit_group_maxima(channels):
    torch.manual_seed(8)
    layer = ConvSemantic(n_kernels=3, channels=channels, n_orientations=4).double()
    x = (torch.rand(2, 1, 11, 11, dtype=torch.float64) * 2 - 1).requires_grad_()
    out, pose = layer(x, return_pose=True)
    full = F.conv2d(x, layer.posed_kernels().reshape(96, 1, 5, 5), padding=2)
    groups = (torch.arange(96).view(3, 32) if channels == "kernel"
              else orientation_groups(3, 32, 4))
    ref = torch.stack([full[:, g].max(1).values for g in groups], 1)
    ref_pose = torch.stack([g[full[:, g].max(1).indices] for g in groups], 1)
    torch.testing.assert_close(out, F.relu(ref / 5))
    assert torch.equal(pose, ref_pose) and out.shape == (2, layer.out_channels, 11, 11)
    upstream = torch.randn_like(out)
    ours = torch.autograd.grad((layer(x) * upstream).sum(), (x, layer.kernels))
    theirs = torch.autograd.grad((F.relu(ref / 5) * upstream).sum(), (x, layer.kernels))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


def test_affine_poses_warp_every_channel_like_a_single_channel_feature():
    torch.manual_seed(9)
    poses = AffinePoses(n_features=3, n_poses=5, translation_std=2.0)
    base = torch.randn(3, 2, 12, 12)
    both = poses(base)
    assert both.shape == (3, 5, 2, 12, 12)
    for c in range(2):
        torch.testing.assert_close(both[:, :, c], poses(base[:, c]))


def test_multichannel_affine_semantic_equals_explicit_matching():
    torch.manual_seed(10)
    layer = AffineSemantic(n_features=3, n_poses=4, feature_size=6, image_size=10, in_channels=2)
    posed = layer.posed_features().detach()
    assert posed.shape == (3, 4, 2, 10, 10)
    torch.testing.assert_close(posed.flatten(2).norm(dim=2), torch.ones(3, 4))
    x = torch.rand(5, 2, 10, 10)
    out, pose = layer(x, return_pose=True)
    for b in range(5):
        for f in range(3):
            scores = [float((x[b] * posed[f, p]).sum()) for p in range(4)]
            assert out[b, f].item() == pytest.approx(max(0.0, max(scores)), abs=1e-5)
            assert pose[b, f].item() == max(range(4), key=scores.__getitem__)
    layer(x).sum().backward()
    assert layer.features.grad.abs().sum() > 0 and layer.poses.theta.grad.abs().sum() > 0
    with torch.no_grad():
        layer.features.mul_(4.0)
    layer.regularize_()
    torch.testing.assert_close(layer.features.flatten(1).norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        layer(torch.rand(5, 1, 10, 10))


def test_posed_logical_equals_max_of_dot_products_with_dense_gradients():
    torch.manual_seed(11)
    layer = PosedLogical(n_classes=3, block_size=2, n_poses=5)
    w0 = layer.weight.detach().clone()
    # init: pose r of class j is the roll r mod 2 of the paper's init
    for j in range(3):
        for r in range(5):
            expected = torch.full((6,), -0.1)
            expected[2 * j + r % 2] = 0.4
            torch.testing.assert_close(w0[j, r], expected)
    with torch.no_grad():
        layer.weight.normal_()
    w = layer.weight.detach()
    x = torch.rand(4, 6)
    logits, pose = layer(x, return_pose=True)
    for b in range(4):
        for j in range(3):
            dots = [float(x[b] @ w[j, r]) for r in range(5)]
            assert logits[b, j].item() == pytest.approx(max(dots), abs=1e-6)
            assert pose[b, j].item() == max(range(5), key=dots.__getitem__)
    logits.sum().backward()
    grad = layer.weight.grad
    # exactly the winning pose of each (sample, class) gets the gradient x
    expected = torch.zeros_like(grad)
    for b in range(4):
        for j in range(3):
            expected[j, pose[b, j]] += x[b]
    torch.testing.assert_close(grad, expected)
    with pytest.raises(ValueError, match="x must be"):
        layer(torch.rand(2, 5))


@pytest.mark.parametrize("sizes", [
    {},
    {"features_per_class": 3, "affine_poses": 6},
    {"conv_kernels": 2, "conv_channels": "orientation", "orientations": 2, "affine_poses": 4},
    {"conv_kernels": 3, "conv_channels": "kernel", "logical": "poses", "logical_poses": 3},
])
def test_ten_digit_variants_are_batch_independent_and_keep_constraints(sizes):
    torch.manual_seed(12)
    model = semantic_mnist(range(10), **sizes).eval()
    x = torch.rand(6, 1, 28, 28)
    together = model(x)
    alone = torch.cat([model(x[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    F.cross_entropy(model(x), torch.arange(6)).backward()
    opt.step()
    from whiteboxdl.models.training import regularize

    regularize(model)
    torch.testing.assert_close(model.conv.kernels.flatten(1).norm(dim=1),
                               torch.ones(model.conv.kernels.shape[0]))
    torch.testing.assert_close(model.affine.features.flatten(1).norm(dim=1),
                               torch.ones(model.affine.features.shape[0]))
    assert 0.01 <= model.two_step.t[0] <= 0.49 and model.two_step.scales.min() >= 0.001


def test_semantic_mnist_validates_size_arguments_and_arch():
    with pytest.raises(ValueError, match="unknown arch"):
        semantic_mnist(range(10), arch="huge")
    with pytest.raises(TypeError, match="width"):
        semantic_mnist(range(10), width=3)
    with pytest.raises(ValueError, match=r"features_per_class must be a int in \[1, 64\]"):
        semantic_mnist(range(10), features_per_class=0)
    with pytest.raises(ValueError, match="must be a int"):
        semantic_mnist(range(10), affine_poses=True)
    with pytest.raises(ValueError, match=r"conv_channels must be one of \['one'"):
        semantic_mnist(range(10), conv_channels="many")
    with pytest.raises(ValueError, match="logical must be one of"):
        semantic_mnist(range(10), logical="and")
    with pytest.raises(ValueError, match="unknown conv channels"):
        ConvSemantic(channels="many")
    model = semantic_mnist(range(10), translation_std=2)  # an int for a float is fine
    assert model.affine.features.shape == (40, 20, 20)
    import inspect

    keywords = {name for name, p in inspect.signature(semantic_mnist).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    assert keywords == set(SIZE_BOUNDS), "every size argument is an explicit keyword"


def test_two_step_margin_and_flat_outer_pieces_are_enforced_by_regularize():
    from whiteboxdl.semantic.layers import TwoStep

    layer = TwoStep(margin=0.1, outer_scale_max=0.01)
    assert layer.t.tolist() == pytest.approx([0.4, 0.6])  # the initial (0.25, 0.75), clipped
    assert layer.scales.tolist() == pytest.approx([0.01, 0.1, 0.1, 0.01])
    with torch.no_grad():
        layer.t.copy_(torch.tensor([0.1, 0.95]))
        layer.scales.copy_(torch.tensor([1.0, 1.0, 1.0, 1.0]))
    layer.regularize_()
    assert layer.t.tolist() == pytest.approx([0.4, 0.6])
    assert layer.scales.tolist() == pytest.approx([0.01, 1.0, 1.0, 0.01])
    # flat outer pieces: below t0 - 0.05 and above t1 + 0.05 the output varies by < 0.05 (an
    # eps-move of a pixel there changes almost nothing); with the init scale 0.1 it varies by > 0.15
    x = torch.linspace(0, 1, 1001)
    with torch.no_grad():
        out = layer(x)
        loose = TwoStep(margin=0.1)(x)
    for mask in (x < 0.35, x > 0.65):
        assert out[mask].max() - out[mask].min() < 0.05
        assert loose[mask].max() - loose[mask].min() > 0.15
    default = TwoStep()
    assert default.margin == 0.49 and default.outer_scale_max == 2.0
    with pytest.raises(ValueError, match="margin"):
        TwoStep(margin=0.6)
    with pytest.raises(ValueError, match="outer_scale_max"):
        TwoStep(outer_scale_max=0.0)


def test_conv_cap_saturates_smoothly_and_equals_the_formula():
    torch.manual_seed(13)
    plain = ConvSemantic().double()
    capped = ConvSemantic(cap=0.3).double()
    capped.load_state_dict(plain.state_dict())
    x = torch.rand(2, 1, 9, 9, dtype=torch.float64) * 2 - 1
    m = plain(x)
    torch.testing.assert_close(capped(x), 0.3 * torch.tanh(m / 0.3))
    assert capped(x).max() < 0.3 and torch.equal(capped(x) > 0, m > 0)
    x.requires_grad_()
    (g,) = torch.autograd.grad(capped(x).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    with pytest.raises(ValueError, match="cap"):
        ConvSemantic(cap=-1.0)


@pytest.mark.parametrize("kind", ["sign", "uniform"])
def test_noise_kinds_have_the_stated_distribution(kind):
    from whiteboxdl.semantic.train import noise_augment

    g = torch.Generator().manual_seed(14)
    out = noise_augment(torch.full((50000,), 0.5), g, p=1.0, mean=0.1, std=0.2, kind=kind)
    noise = out - 0.5
    if kind == "sign":
        values = set(torch.round(noise * 1000).unique().tolist())
        assert values == {-100.0, 300.0}
        assert (noise > 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    else:
        assert noise.min() >= -0.1 - 1e-6 and noise.max() <= 0.3 + 1e-6
        assert noise.mean().item() == pytest.approx(0.1, abs=0.005)
        assert noise.var().item() == pytest.approx(0.4 ** 2 / 12, rel=0.03)
    with pytest.raises(ValueError, match="noise kind"):
        noise_augment(torch.zeros(3), g, kind="salt")


@pytest.mark.parametrize("arch", ["wide", "orientation", "kernels", "posed-logic", "capped",
                                  "margin", "flat-margin"])
def test_every_named_arch_builds_runs_and_inspects(arch, tmp_path):
    from whiteboxdl.semantic.inspect import inspect_model
    from whiteboxdl.semantic.network import ARCHS, processing_steps

    full = semantic_mnist(range(10), arch=arch)
    for name, value in ARCHS[arch].items():  # the arch really sets its sizes
        assert name in SIZE_BOUNDS
        layer_value = {"features_per_class": full.logical.block_size,
                       "conv_channels": full.conv.channels,
                       "logical_poses": getattr(full.logical, "n_poses", None),
                       "conv_cap": full.conv.cap, "threshold_margin": full.two_step.margin,
                       "outer_scale_max": full.two_step.outer_scale_max,
                       "conv_kernels": full.conv.kernels.shape[0],
                       "orientations": full.conv.out_channels,
                       "logical": "poses" if hasattr(full.logical, "n_poses") else "roll"}[name]
        assert layer_value == value, name
    # a small version (3 digits, 4 poses) keeps the figures fast
    model = semantic_mnist((0, 1, 2), arch=arch, affine_poses=4).eval()
    x = torch.rand(3, 1, 28, 28)
    steps = processing_steps(model, x)
    torch.testing.assert_close(steps["logits"], model(x))
    if arch in ("orientation", "kernels"):
        assert steps["conv"].shape[1] == 4 and steps["class_pose_image"].dim() == 5
        dots = (steps["conv"].unsqueeze(1) * steps["class_pose_image"]).flatten(2).sum(2)
        torch.testing.assert_close(dots.clamp_min(0), steps["class_match"], atol=1e-5,
                                   rtol=1e-5)
    if arch in ("orientation", "posed-logic"):  # the figures with their own code paths
        paths = inspect_model(model, tmp_path, x, torch.tensor([0, 1, 2]), n_samples=3)
        assert {p.name for p in paths} >= {"processing_steps.png", "logical_weights.png",
                                           "affine_features.png", "affine_poses.png"}


def test_model_files_of_every_design_load_back_and_bad_sizes_are_refused(tmp_path):
    """Model files carry the design's keywords; the registry's allow-list takes each of them
    (values and outputs equal after the round trip) and refuses out-of-range ones."""
    from whiteboxdl.models.checkpoint import load_model, save_model
    from whiteboxdl.semantic.network import ARCHS, BUILDER

    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for arch in ARCHS:
        kwargs = {"digits": list(range(10)), "arch": arch, "features_per_class": 2}
        model = semantic_mnist(**kwargs).eval()
        save_model(tmp_path / f"{arch}.pt", model, BUILDER, kwargs)
        loaded = load_model(tmp_path / f"{arch}.pt")
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x)), arch
    model = semantic_mnist(range(10))
    for bad in ({"threshold_margin": 0.6}, {"features_per_class": 10_000}, {"arch": "huge"},
                {"logical": "nonsense"}):
        kwargs = {"digits": list(range(10)), **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            save_model(tmp_path / "bad.pt", model, BUILDER, kwargs)
        # a file written by hand (not through save_model) is refused when read
        torch.save({"builder": BUILDER, "kwargs": kwargs, "state_dict": model.state_dict()},
                   tmp_path / "bad.pt")
        with pytest.raises(ValueError, match=next(iter(bad))):
            load_model(tmp_path / "bad.pt")
