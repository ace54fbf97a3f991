"""Semantic layers against hand-computed values and independent (slow, obvious) references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from whiteboxdl.semantic.layers import AffineSemantic, ConvSemantic, Logical, TwoStep, conv_max

PUBLISHED = dict(a=(0.825, 0.681), t=(0.365, 0.556), scales=(0.001, 0.126, 0.28, 0.005))


def two_step_reference(x, a, t, scales, batch_max=None):
    """The spec's four pieces, one scalar at a time; ``batch_max[piece]`` replaces the analytic M
    (the largest ``|z|`` over all of ``y`` in [-1, 1], reached at the end away from ``T``)."""
    y = 2 * x - 1
    T0, T1 = 2 * t[0] - 1, 2 * t[1] - 1
    if y < T0:
        T, amp, s, piece = T0, a[0], scales[0], 0
    elif y < 0:
        T, amp, s, piece = T0, a[0], scales[1], 1
    elif y < T1:
        T, amp, s, piece = T1, a[1], scales[2], 2
    else:
        T, amp, s, piece = T1, a[1], scales[3], 3
    z = (y - T) / (s + abs(y - T))
    if piece in (1, 2):
        sh = T / (s + abs(T))
        return amp * (z + sh) / abs(sh)
    if batch_max is not None:
        M = batch_max[piece]
    else:
        far = 1.0 if piece == 0 else -1.0
        M = abs(far - T) / (s + abs(far - T))
    return z / (M / (1 - amp)) + math.copysign(amp, T)


def test_two_step_hand_computed_points_at_init():
    x = torch.tensor([0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 1.0])
    # by hand: y=-0.8 -> z=-0.3/0.4=-0.75, M=1.5/1.6 -> -0.75*0.5/0.9375-0.5=-0.9;
    # y=-1 -> z=-0.5/0.6 -> -17/18; inner: y=-0.2 -> 0.5*(0.75-5/6)/(5/6)=-0.05, etc.
    expected = [-17 / 18, -0.9, -0.5, -0.05, 0.0, 0.05, 0.5, 0.9, 17 / 18]
    assert TwoStep()(x).tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("params", [dict(a=(0.5, 0.5), t=(0.25, 0.75), scales=(0.1,) * 4),
                                    PUBLISHED, dict(a=(0.2, 0.9), t=(0.1, 0.9),
                                                    scales=(1.5, 0.01, 2.0, 0.3))])
def test_two_step_matches_piecewise_reference(params):
    layer = TwoStep(**params)
    x = torch.linspace(0, 1, 257)
    ref = [two_step_reference(v, **params) for v in x.tolist()]
    assert layer(x).tolist() == pytest.approx(ref, abs=1e-5)
    out = layer(x)
    assert torch.all(out[1:] >= out[:-1] - 1e-6), "monotone"
    assert -1 < out[0].item() < -params["a"][0] and params["a"][1] < out[-1].item() < 1


def test_two_step_is_batch_independent_and_equals_batch_max_when_batch_has_0_and_1():
    layer = TwoStep(**PUBLISHED)
    torch.manual_seed(3)
    sample = torch.rand(1, 1, 28, 28) * 0.6 + 0.2  # no pixel at 0 or 1
    others = torch.rand(5, 1, 28, 28)
    alone = layer(sample)
    together = layer(torch.cat([sample, others]))[:1]
    assert torch.equal(alone, together)
    # the reference code's normaliser, the maximum of |z| over the whole batch tensor (every
    # pixel, not only the piece's), gives the same numbers as soon as the batch contains a pixel
    # at 0 and one at 1
    batch = torch.cat([torch.tensor([0.0, 1.0]), others.flatten()[:200]])
    batch_max = {}
    for piece, T, s in ((0, 2 * PUBLISHED["t"][0] - 1, PUBLISHED["scales"][0]),
                        (3, 2 * PUBLISHED["t"][1] - 1, PUBLISHED["scales"][3])):
        batch_max[piece] = max(abs(2 * v - 1 - T) / (s + abs(2 * v - 1 - T)) for v in batch.tolist())
    ref = [two_step_reference(v, **PUBLISHED, batch_max=batch_max) for v in batch.tolist()]
    assert layer(batch).tolist() == pytest.approx(ref, abs=1e-5)


def test_two_step_gradients_reach_all_eight_parameters():
    layer = TwoStep()
    layer(torch.linspace(0, 1, 101)).pow(2).sum().backward()
    grads = torch.cat([layer.a.grad, layer.t.grad, layer.scales.grad])
    assert grads.shape == (8,) and torch.all(grads != 0)


def test_two_step_regularize_clips_to_the_spec_ranges():
    layer = TwoStep()
    with torch.no_grad():
        layer.a.copy_(torch.tensor([-1.0, 3.0]))
        layer.t.copy_(torch.tensor([0.7, 0.2]))
        layer.scales.copy_(torch.tensor([0.0, -1.0, 5.0, 1.0]))
    layer.regularize_()
    assert layer.a.tolist() == pytest.approx([0.01, 0.99])
    assert layer.t.tolist() == pytest.approx([0.49, 0.51])
    assert layer.scales.tolist() == pytest.approx([0.001, 0.001, 2.0, 1.0])


def _conv_reference(layer: ConvSemantic, x: torch.Tensor):
    """Autograd through a plain conv2d with all 64 posed kernels, then the max."""
    posed = layer.posed_kernels()
    out = F.conv2d(x, posed.reshape(-1, 1, 5, 5), padding=2)
    value, index = out.max(dim=1)
    return F.relu(value.unsqueeze(1) / 5), index


def test_conv_semantic_equals_conv2d_max_in_value_pose_and_gradient():
    torch.manual_seed(0)
    layer = ConvSemantic().double()
    x = (torch.rand(3, 1, 12, 12, dtype=torch.float64) * 2 - 1).requires_grad_()
    out, pose = layer(x, return_pose=True)
    ref, ref_pose = _conv_reference(layer, x)
    torch.testing.assert_close(out, ref)
    assert torch.equal(pose, ref_pose)
    upstream = torch.randn_like(out)
    out = layer(x)  # the training path (no pose index) has the same value and gradients
    g_ours = torch.autograd.grad((out * upstream).sum(), (x, layer.kernels))
    g_ref = torch.autograd.grad((ref * upstream).sum(), (x, layer.kernels))
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b)


def test_conv_max_passes_gradcheck():
    torch.manual_seed(1)
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: conv_max(a, b)[0], (x, w), fast_mode=True)


def test_conv_semantic_picks_the_stamped_pose():
    torch.manual_seed(2)
    layer = ConvSemantic()
    posed = layer.posed_kernels().detach()
    for kernel, rotation in ((0, 0), (1, 5), (0, 19), (1, 31)):
        x = torch.zeros(1, 1, 15, 15)
        x[0, 0, 5:10, 6:11] = posed[kernel, rotation]
        out, pose = layer(x, return_pose=True)
        assert pose[0, 7, 8].item() == kernel * 32 + rotation
        assert out[0, 0, 7, 8].item() == pytest.approx(1 / 5, abs=1e-5)  # ||g||=1, divisor 5


def test_conv_kernels_are_unit_norm_after_regularize_and_posed_kernels_always():
    layer = ConvSemantic()
    with torch.no_grad():
        layer.kernels.mul_(3.0)
    norms = layer.posed_kernels().flatten(2).norm(dim=2)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    layer.regularize_()
    torch.testing.assert_close(layer.kernels.flatten(1).norm(dim=1), torch.ones(2))


def test_affine_semantic_equals_explicit_matching_and_picks_the_right_pose():
    torch.manual_seed(4)
    layer = AffineSemantic(n_features=3, n_poses=5, feature_size=6, image_size=10)
    posed = layer.posed_features().detach()
    x = torch.rand(4, 1, 10, 10)
    out, pose = layer(x, return_pose=True)
    for b in range(4):
        for f in range(3):
            scores = [float((x[b, 0] * posed[f, p]).sum()) for p in range(5)]
            assert out[b, f].item() == pytest.approx(max(0.0, max(scores)), abs=1e-5)
            assert pose[b, f].item() == max(range(5), key=scores.__getitem__)
    target = posed[2, 3].view(1, 1, 10, 10)
    out, pose = layer(target, return_pose=True)
    assert pose[0, 2].item() == 3 and out[0, 2].item() == pytest.approx(1.0, abs=1e-5)


def test_affine_base_features_padded_centred_and_renormalised():
    layer = AffineSemantic()
    padded = layer.padded_features()
    assert padded.shape == (8, 28, 28)
    assert padded[:, :4].abs().sum() == 0 and padded[:, :, 24:].abs().sum() == 0
    with torch.no_grad():
        layer.features.mul_(0.1)
    layer.regularize_()
    torch.testing.assert_close(layer.features.flatten(1).norm(dim=1), torch.ones(8))
    torch.testing.assert_close(layer.posed_features().flatten(2).norm(dim=2), torch.ones(8, 32))


def test_affine_poses_receive_gradient():
    layer = AffineSemantic()
    layer(torch.rand(2, 1, 28, 28)).sum().backward()
    assert layer.poses.theta.grad.abs().sum() > 0 and layer.features.grad.abs().sum() > 0


def test_logical_top1_mask_passes_gradient_to_one_own_entry_only():
    layer = Logical(n_classes=2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, 0.7, -0.2, 0.3, -0.5, -0.6, -0.7, -0.8],
                                         [-0.1, -0.2, -0.3, -0.4, 0.2, 0.1, 0.9, 0.0]]))
    x = torch.rand(6, 8) + 0.1
    layer(x).sum().backward()
    grad = layer.weight.grad
    assert (grad[0, :4] != 0).tolist() == [False, True, False, False]   # own block: its max only
    assert (grad[1, 4:] != 0).tolist() == [False, False, True, False]
    assert torch.all(grad[0, 4:] != 0) and torch.all(grad[1, :4] != 0)  # other blocks dense


def test_logical_max_over_rolls_equals_hand_formula_and_picks_the_roll():
    layer = Logical(n_classes=3)
    torch.manual_seed(5)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(3, 12))
        layer.weight[:, :].abs_()
    w = layer.weight.detach()
    x = torch.rand(7, 12)
    logits, roll = layer(x, return_pose=True)
    for j in range(3):
        own = slice(4 * j, 4 * j + 4)
        top = int(w[j, own].argmax())
        other = torch.ones(12, dtype=torch.bool)
        other[own] = False
        expected = w[j, own].max() * x[:, own].max(dim=1).values + x[:, other] @ w[j, other]
        torch.testing.assert_close(logits[:, j], expected)
        # roll p moves the kept entry from `top` to (top + p) % 4, the argmax of the input block
        assert torch.equal((top + roll[:, j]) % 4, x[:, own].argmax(dim=1))


def test_logical_init_and_bad_input():
    layer = Logical(n_classes=2)
    assert layer.weight.tolist()[0] == pytest.approx([0.4, -0.1, -0.1, -0.1, -0.1, -0.1, -0.1, -0.1])
    assert layer.weight.tolist()[1] == pytest.approx([-0.1] * 4 + [0.4, -0.1, -0.1, -0.1])
    with pytest.raises(ValueError, match="x must be"):
        layer(torch.rand(3, 7))


def test_two_step_analytic_backward_passes_gradcheck():
    layer = TwoStep(**PUBLISHED).double()
    torch.manual_seed(6)
    x = torch.rand(64, dtype=torch.float64, requires_grad=True)
    params = tuple(p.detach().clone().requires_grad_() for p in (layer.a, layer.t, layer.scales))

    def f(x, a, t, scales):
        return torch.func.functional_call(layer, {"a": a, "t": t, "scales": scales}, (x,))

    assert torch.autograd.gradcheck(f, (x, *params))
