"""Pose sets of semantic features: each turns base features into all their poses in one batched op.

Three pose sets are used by the proof-of-concept network:

* :class:`RotationPoses` — fixed rotations about the centre of a small kernel, precomputed as one
  linear map ``(poses, s*s, s*s)`` (bilinear, zero padding), applied with one ``einsum``;
* :class:`AffinePoses` — learnable 2x3 affine maps per feature in pixel coordinates with the origin
  at the top-left pixel centre (``align_corners=True``), warped with one ``grid_sample``; by
  default a pose *moves* the feature (the image-warping convention of the reference code), and
  ``convention="sample"`` gives ``grid_sample``'s (a pose says where each output pixel reads);
* :func:`block_roll_index` — cyclic shifts ("rolls") of one block of a weight vector, as a gather
  index.

Coordinates follow ``grid_sample``: a point is ``(x, y)`` = (column, row).
:func:`pixel_affine_to_grid` takes maps from each output pixel ``(x, y)`` to the input location it
samples from, ``(x', y') = A @ (x, y, 1)``; a "warp" pose is the inverse of that map.

Example
-------
>>> import torch
>>> rot = RotationPoses(size=5, n_poses=32)
>>> rot(torch.randn(2, 5, 5)).shape
torch.Size([2, 32, 5, 5])
>>> aff = AffinePoses(n_features=8, n_poses=32)
>>> aff(torch.randn(8, 28, 28)).shape
torch.Size([8, 32, 28, 28])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def pixel_affine_to_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Sampling grid of pixel-coordinate affine maps, for ``grid_sample(..., align_corners=True)``.

    Parameters
    ----------
    theta : ``(..., 2, 3)`` maps from output pixel ``(x, y, 1)`` to input pixel ``(x', y')``, with
        ``(0, 0)`` the centre of the top-left pixel.

    Returns
    -------
    ``(..., height, width, 2)`` normalised coordinates in ``[-1, 1]`` (outside means zero padding).

    Example
    -------
    >>> eye = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    >>> pixel_affine_to_grid(eye, 3, 3)[0, 0].tolist(), pixel_affine_to_grid(eye, 3, 3)[2, 2].tolist()
    ([-1.0, -1.0], [1.0, 1.0])
    """
    if theta.shape[-2:] != (2, 3):
        raise ValueError(f"theta must have shape (..., 2, 3), got {tuple(theta.shape)}")
    dtype, device = theta.dtype, theta.device
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                            torch.arange(width, dtype=dtype, device=device), indexing="ij")
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1)  # (H, W, 3)
    source = torch.einsum("...ij,hwj->...hwi", theta, points)  # (..., H, W, 2) in pixels
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], dtype=dtype,
                         device=device)
    return source * scale - 1.0


def rotation_thetas(n_poses: int, size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Pixel-coordinate affine maps ``(n_poses, 2, 3)`` rotating by ``k * 360/n_poses`` degrees about
    the centre of a ``size x size`` kernel (output pixel samples the inversely rotated location)."""
    angles = torch.arange(n_poses, dtype=torch.float64) * (2 * math.pi / n_poses)
    cos, sin = torch.cos(angles), torch.sin(angles)
    c = (size - 1) / 2.0
    # source = R(-angle) (p - c) + c; R(-a) = [[cos, sin], [-sin, cos]]
    theta = torch.stack([
        torch.stack([cos, sin, c - c * cos - c * sin], dim=-1),
        torch.stack([-sin, cos, c + c * sin - c * cos], dim=-1),
    ], dim=1)
    return theta.to(dtype)


class RotationPoses(nn.Module):
    """Fixed rotations of ``size x size`` kernels as one precomputed linear map.

    ``matrix[p]`` (``s*s x s*s``) is bilinear interpolation with zero padding at the ``p``-th angle
    ``p * 360/n_poses`` degrees; the map is a buffer (not a parameter, not saved).

    Example
    -------
    >>> rot = RotationPoses(size=3, n_poses=4)
    >>> k = torch.zeros(1, 3, 3); k[0, 0, 1] = 1.0          # a dot above the centre
    >>> (rot(k)[0, 1] > 0.5).nonzero().tolist()              # 90 degrees: right of the centre
    [[1, 2]]
    """

    def __init__(self, size: int = 5, n_poses: int = 32):
        super().__init__()
        if size < 1 or n_poses < 1:
            raise ValueError(f"size and n_poses must be >= 1, got size={size}, n_poses={n_poses}")
        self.size, self.n_poses = int(size), int(n_poses)
        self.register_buffer("matrix", self._build_matrix(), persistent=False)

    def _build_matrix(self) -> torch.Tensor:
        s, p = self.size, self.n_poses
        basis = torch.eye(s * s, dtype=torch.float64).view(s * s, 1, s, s)
        grid = pixel_affine_to_grid(rotation_thetas(p, s, torch.float64), s, s)  # (P, s, s, 2)
        # one grid_sample: every basis image under every rotation
        inputs = basis.repeat(p, 1, 1, 1)  # (P*s*s, 1, s, s)
        grids = grid.repeat_interleave(s * s, dim=0)
        out = F.grid_sample(inputs, grids, mode="bilinear", padding_mode="zeros",
                            align_corners=True)  # (P*s*s, 1, s, s)
        # column j of matrix[p] is the image of basis vector j
        return out.view(p, s * s, s * s).transpose(1, 2).contiguous().float()

    def forward(self, base: torch.Tensor) -> torch.Tensor:
        """``(C, s, s)`` base kernels -> ``(C, P, s, s)`` rotated kernels."""
        if base.shape[-2:] != (self.size, self.size):
            raise ValueError(f"base kernels must be (C, {self.size}, {self.size}), "
                             f"got {tuple(base.shape)}")
        flat = base.reshape(base.shape[0], -1)
        posed = torch.einsum("pij,cj->cpi", self.matrix.to(flat.dtype), flat)
        return posed.reshape(base.shape[0], self.n_poses, self.size, self.size)


def invert_affine(theta: torch.Tensor) -> torch.Tensor:
    """Inverse of affine maps ``(..., 2, 3)`` (``[A | t] -> [A^-1 | -A^-1 t]``), differentiable.

    Example
    -------
    >>> invert_affine(torch.tensor([[2.0, 0, 4], [0, 1, -1]])).tolist()
    [[0.5, 0.0, -2.0], [0.0, 1.0, 1.0]]
    """
    inverse = torch.linalg.inv(theta[..., :2])
    return torch.cat([inverse, -inverse @ theta[..., 2:]], dim=-1)


#: How an affine pose acts on a feature: ``"warp"`` moves it (base pixel ``p`` lands at
#: ``theta @ (p, 1)``: OpenCV's / kornia's ``warp_affine``, used by the reference code);
#: ``"sample"`` is ``grid_sample``'s (output pixel ``q`` reads the base at ``theta @ (q, 1)``).
POSE_CONVENTIONS = ("warp", "sample")


class AffinePoses(nn.Module):
    """Learnable 2x3 affine poses, ``n_poses`` per feature, in pixel coordinates (corner origin).

    ``theta`` has shape ``(n_features, n_poses, 2, 3)``; init: identity + N(0, 0.01^2) on all entries
    + N(0, ``translation_std``^2) pixels on the translation column. ``convention`` is one of
    :data:`POSE_CONVENTIONS`. Warping is bilinear with zero padding (one ``grid_sample`` call for
    all features and poses).

    Example
    -------
    >>> poses = AffinePoses(n_features=2, n_poses=3)
    >>> poses.theta.shape
    torch.Size([2, 3, 2, 3])
    """

    def __init__(self, n_features: int = 8, n_poses: int = 32, jitter_std: float = 0.01,
                 translation_std: float = 1.0, convention: str = "warp"):
        super().__init__()
        if n_features < 1 or n_poses < 1:
            raise ValueError(f"n_features and n_poses must be >= 1, got {n_features}, {n_poses}")
        if convention not in POSE_CONVENTIONS:
            raise ValueError(f"unknown pose convention {convention!r}; choose one of "
                             f"{list(POSE_CONVENTIONS)}")
        self.n_features, self.n_poses = int(n_features), int(n_poses)
        self.convention = convention
        theta = torch.zeros(n_features, n_poses, 2, 3)
        theta[..., 0, 0] = 1.0
        theta[..., 1, 1] = 1.0
        theta += jitter_std * torch.randn_like(theta)
        theta[..., :, 2] += translation_std * torch.randn(n_features, n_poses, 2)
        self.theta = nn.Parameter(theta)

    def forward(self, base: torch.Tensor) -> torch.Tensor:
        """``(F, H, W)`` base features -> ``(F, P, H, W)`` warped features; ``(F, C, H, W)``
        (several channels, warped alike) -> ``(F, P, C, H, W)``."""
        if base.dim() not in (3, 4) or base.shape[0] != self.n_features:
            raise ValueError(f"base features must be ({self.n_features}, [C,] H, W), "
                             f"got {tuple(base.shape)}")
        channels = base.dim() == 4
        stack = base if channels else base.unsqueeze(1)
        f, c, h, w = stack.shape
        sampling = invert_affine(self.theta) if self.convention == "warp" else self.theta
        grid = pixel_affine_to_grid(sampling, h, w)  # (F, P, H, W, 2)
        out = F.grid_sample(stack, grid.reshape(f, self.n_poses * h, w, 2),
                            mode="bilinear", padding_mode="zeros", align_corners=True)
        out = out.view(f, c, self.n_poses, h, w)
        return out.transpose(1, 2) if channels else out[:, 0]


def block_roll_index(n_blocks: int, block_size: int) -> torch.Tensor:
    """Gather index ``(n_blocks, block_size, n_blocks*block_size)`` of the roll poses.

    Row ``[j, p]`` reads a weight vector with block ``j`` cyclically shifted by ``p``
    (``torch.roll`` convention: entry ``i`` of the block takes entry ``(i - p) % block_size``) and
    every other block unchanged.

    Example
    -------
    >>> block_roll_index(2, 2)[0].tolist()
    [[0, 1, 2, 3], [1, 0, 2, 3]]
    """
    if n_blocks < 1 or block_size < 1:
        raise ValueError(f"n_blocks and block_size must be >= 1, got {n_blocks}, {block_size}")
    n = n_blocks * block_size
    index = torch.arange(n).repeat(n_blocks, block_size, 1)  # (k, B, n)
    j = torch.arange(n_blocks).view(-1, 1, 1)
    p = torch.arange(block_size).view(1, -1, 1)
    i = torch.arange(block_size).view(1, 1, -1)
    rolled = j * block_size + (i - p) % block_size  # (k, B, B)
    cols = (j * block_size + i).expand(n_blocks, block_size, block_size)
    return index.scatter(2, cols, rolled.expand(n_blocks, block_size, block_size))
