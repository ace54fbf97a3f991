"""Pose sets against independent references: explicit bilinear sampling, rot90, torch.roll."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from whiteboxdl.semantic.samplers import (AffinePoses, RotationPoses, block_roll_index,
                                          invert_affine, pixel_affine_to_grid)


def bilinear_warp(image: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Reference: out[y, x] = image sampled bilinearly at theta @ (x, y, 1), zero outside."""
    h, w = image.shape
    out = np.zeros_like(image)
    for y in range(h):
        for x in range(w):
            sx, sy = theta @ np.array([x, y, 1.0])
            x0, y0 = math.floor(sx), math.floor(sy)
            for yy, wy in ((y0, 1 - (sy - y0)), (y0 + 1, sy - y0)):
                for xx, wx in ((x0, 1 - (sx - x0)), (x0 + 1, sx - x0)):
                    if 0 <= yy < h and 0 <= xx < w:
                        out[y, x] += wy * wx * image[yy, xx]
    return out


def test_rotation_poses_match_explicit_bilinear_rotation():
    rot = RotationPoses(size=5, n_poses=32)
    base = torch.randn(2, 5, 5)
    posed = rot(base)
    for p in range(32):
        a = p * 2 * math.pi / 32
        # output pixel samples the point rotated back by a about the centre (2, 2)
        theta = np.array([[math.cos(a), math.sin(a), 0.0], [-math.sin(a), math.cos(a), 0.0]])
        theta[:, 2] = np.array([2.0, 2.0]) - theta[:, :2] @ np.array([2.0, 2.0])
        for c in range(2):
            ref = bilinear_warp(base[c].double().numpy(), theta)
            np.testing.assert_allclose(posed[c, p].numpy(), ref, atol=1e-5)


def test_quarter_turns_are_exact_pixel_rotations():
    rot = RotationPoses(size=5, n_poses=32)
    base = torch.randn(3, 5, 5)
    posed = rot(base)
    torch.testing.assert_close(posed[:, 0], base, atol=1e-6, rtol=0)
    torch.testing.assert_close(posed[:, 8], torch.rot90(base, -1, dims=(1, 2)), atol=1e-5, rtol=0)
    torch.testing.assert_close(posed[:, 16], torch.flip(base, dims=(1, 2)), atol=1e-5, rtol=0)


def test_rotation_map_is_a_buffer_not_a_parameter():
    rot = RotationPoses(5, 32)
    assert list(rot.parameters()) == [] and rot.state_dict() == {}
    assert rot.matrix.shape == (32, 25, 25)


def test_affine_poses_match_explicit_bilinear_warp_in_corner_pixel_coordinates():
    torch.manual_seed(1)
    poses = AffinePoses(n_features=2, n_poses=3, convention="sample")
    with torch.no_grad():
        poses.theta[0, 0] = torch.tensor([[2.0, 0, 0], [0, 2.0, 0]])          # zoom about corner
        poses.theta[0, 1] = torch.tensor([[1.0, 0, 2.0], [0, 1.0, -1.0]])     # integer shift
        poses.theta[1, 2] = torch.tensor([[0.9, 0.3, 1.7], [-0.2, 1.1, -0.6]])  # generic
    base = torch.randn(2, 9, 11)
    out = poses(base)
    for f in range(2):
        for p in range(3):
            ref = bilinear_warp(base[f].double().numpy(), poses.theta[f, p].detach().double().numpy())
            np.testing.assert_allclose(out[f, p].detach().numpy(), ref, atol=1e-5)
    # corner origin: the zoom keeps pixel (0, 0) and reads (2y, 2x)
    assert torch.isclose(out[0, 0, 0, 0], base[0, 0, 0])
    assert torch.isclose(out[0, 0, 3, 4], base[0, 6, 8])
    # shift: out[y, x] = base[y - 1, x + 2]
    torch.testing.assert_close(out[0, 1, 1:, :-2], base[0, :-1, 2:])


def test_affine_pose_equals_grid_sample_with_align_corners_true():
    theta = torch.tensor([[0.8, -0.2, 3.0], [0.1, 1.2, -2.0]])
    grid = pixel_affine_to_grid(theta, 28, 28)
    # normalised coordinate of pixel x is 2x/27 - 1 (align_corners=True convention)
    x, y = 5, 7
    sx, sy = (theta @ torch.tensor([x, y, 1.0])).tolist()
    assert grid[y, x].tolist() == pytest.approx([2 * sx / 27 - 1, 2 * sy / 27 - 1], abs=1e-6)
    img = torch.randn(1, 1, 28, 28)
    ours = F.grid_sample(img, grid[None], align_corners=True)
    poses = AffinePoses(1, 1, convention="sample")
    with torch.no_grad():
        poses.theta[0, 0] = theta
    torch.testing.assert_close(poses(img[0])[0], ours[0], atol=1e-6, rtol=0)


def test_warp_poses_move_the_feature_and_equal_sampling_with_the_inverse_map():
    torch.manual_seed(2)
    warp, sample = AffinePoses(2, 3), AffinePoses(2, 3, convention="sample")
    assert warp.convention == "warp"            # the default, as the reference code's kornia warp
    with torch.no_grad():
        warp.theta[0, 0] = torch.tensor([[1.0, 0, 2.0], [0, 1.0, -1.0]])   # move right 2, up 1
        warp.theta[1, 1] = torch.tensor([[2.0, 0, 0], [0, 2.0, 0]])         # zoom in about corner
        sample.theta.copy_(invert_affine(warp.theta))
    base = torch.randn(2, 9, 11)
    out = warp(base)
    torch.testing.assert_close(out, sample(base), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0, 0, :-1, 2:], base[0, 1:, :-2])   # out[y, x] = base[y+1, x-2]
    assert torch.isclose(out[1, 1, 4, 6], base[1, 2, 3])               # pixel (3, 2) lands at (6, 4)
    # the inverse is exact and differentiable
    theta = torch.tensor([[0.9, 0.3, 1.7], [-0.2, 1.1, -0.6]], dtype=torch.float64, requires_grad=True)
    back = invert_affine(invert_affine(theta))
    torch.testing.assert_close(back, theta.detach())
    back.sum().backward()
    assert torch.isfinite(theta.grad).all()


def test_affine_init_is_identity_plus_jitter_and_pixel_translations():
    torch.manual_seed(0)
    theta = AffinePoses(n_features=8, n_poses=32).theta.detach()
    linear = theta[..., :2] - torch.eye(2)
    assert linear.abs().max() < 0.06 and 0.005 < linear.std() < 0.015
    assert 0.8 < theta[..., 2].std() < 1.2


def test_block_roll_index_equals_torch_roll_of_own_block():
    k, b = 3, 4
    idx = block_roll_index(k, b)
    v = torch.arange(k * b) * 10
    for j in range(k):
        for p in range(b):
            expected = v.clone()
            expected[j * b:(j + 1) * b] = torch.roll(v[j * b:(j + 1) * b], p)
            assert torch.equal(v[idx[j, p]], expected)


def test_bad_shapes_raise_value_error():
    with pytest.raises(ValueError, match="base kernels"):
        RotationPoses(5, 4)(torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="base features"):
        AffinePoses(2, 3)(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="theta"):
        pixel_affine_to_grid(torch.randn(2, 2), 4, 4)
    with pytest.raises(ValueError, match="convention"):
        AffinePoses(2, 3, convention="inverse")
