"""Semantic layers: each is an explicit (base feature, pose set, locality function) triple.

* :class:`TwoStep` — the real-valued "ON / OFF / meh" pixel feature (8 parameters), with the
  analytic normaliser, so a sample's output never depends on the rest of the batch;
* :class:`ConvSemantic` — base kernels matched in all rotations (max over kernels and poses);
* :class:`AffineSemantic` — base features matched in learnable affine poses (max over poses);
* :class:`Logical` — per class, its own block top-1 masked and rolled, the other blocks dense.

Layers with constraints have ``regularize_()`` (called by the training loop after each optimiser
step); layers with poses expose them and return the matching pose with ``return_pose=True``.

Example
-------
>>> import torch
>>> x = torch.rand(4, 1, 28, 28)
>>> h = TwoStep()(x)
>>> c, pose = ConvSemantic()(h, return_pose=True)
>>> a = AffineSemantic()(c)
>>> Logical(n_classes=2)(a).shape, pose.shape
(torch.Size([4, 2]), torch.Size([4, 28, 28]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from whiteboxdl.semantic.samplers import AffinePoses, RotationPoses, block_roll_index


def _unit_norm(t: torch.Tensor, dims: int, eps: float = 1e-12) -> torch.Tensor:
    """Divide by the L2 norm over the last ``dims`` dimensions."""
    norm = t.flatten(-dims).norm(dim=-1).clamp_min(eps)
    return t / norm.view(*norm.shape, *([1] * dims))


class _PiecewiseSoftsign(torch.autograd.Function):
    """``out = alpha[k] * z + beta[k]``, ``z = (y - T[k]) / (s[k] + |y - T[k]|)`` on 4 pieces
    ``k = [y >= T[0]] + [y >= 0] + [y >= T[3]]``; coefficient gradients by ``bincount``."""

    @staticmethod
    def _pieces(y, big_t):
        k = (y >= big_t[0]).long() + (y >= 0).long() + (y >= big_t[3]).long()
        return k.reshape(-1)

    @staticmethod
    def _at(values, k, like):
        return values.index_select(0, k).view_as(like)  # much faster than values[k]

    @staticmethod
    def forward(ctx, y, big_t, s, alpha, beta):
        k = _PiecewiseSoftsign._pieces(y, big_t)
        at = _PiecewiseSoftsign._at
        d = y - at(big_t, k, y)
        z = d / (at(s, k, y) + d.abs())
        ctx.save_for_backward(y, big_t, s, alpha)
        return at(alpha, k, y) * z + at(beta, k, y)

    @staticmethod
    def backward(ctx, g):
        y, big_t, s, alpha = ctx.saved_tensors
        k = _PiecewiseSoftsign._pieces(y, big_t)
        at = _PiecewiseSoftsign._at
        d = y - at(big_t, k, y)
        s_k = at(s, k, y)
        den = s_k + d.abs()
        z = d / den
        ga = g * at(alpha, k, y)
        dz_dy = s_k / (den * den)

        def per_piece(values):
            return torch.bincount(k, weights=values.reshape(-1), minlength=4).to(y.dtype)

        grad_y = ga * dz_dy if ctx.needs_input_grad[0] else None
        return (grad_y, per_piece(-ga * dz_dy), per_piece(-ga * z / den), per_piece(g * z),
                per_piece(g))


class TwoStep(nn.Module):
    """Two-step real-valued pixel feature: [0,1] -> [-1,1], OFF / meh / ON (8 parameters).

    ``y = 2x - 1`` is split at ``T0 = 2 t0 - 1 < 0 < T1 = 2 t1 - 1`` into four softsign pieces
    ``z = (y - T) / (s + |y - T|)`` with one scale each (``scales`` in piece order
    ``[y<T0, T0<=y<0, 0<=y<T1, y>=T1]``):

    * inner pieces: ``a (z + sh) / |sh|`` with ``sh = T / (s + |T|)``, mapping ``[T0,0) -> [-a0,0)``
      and ``[0,T1) -> [0,a1)``;
    * outer pieces: ``z (1 - a) / M + sign(T) a`` with ``M = D / (s + D)``, ``D = 1 + |T|``, the
      analytic largest ``|z|`` over all ``y`` in ``[-1,1]`` (reached at the end of the range *away*
      from ``T``). The reference code takes the maximum over the whole batch tensor, which equals
      this as soon as the batch has a pixel at 0 and one at 1; the outer pieces therefore end a
      little short of -1 and 1 (by ``~ s (1-a)`` for small scales).

    Example
    -------
    >>> layer = TwoStep()
    >>> [round(v, 4) for v in layer(torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])).tolist()]
    [-0.9444, -0.5, 0.0, 0.5, 0.9444]
    """

    def __init__(self, a: tuple[float, float] = (0.5, 0.5), t: tuple[float, float] = (0.25, 0.75),
                 scales: tuple[float, ...] = (0.1, 0.1, 0.1, 0.1), margin: float = 0.49,
                 outer_scale_max: float = 2.0):
        super().__init__()
        if len(a) != 2 or len(t) != 2 or len(scales) != 4:
            raise ValueError(f"need 2 heights a, 2 thresholds t and 4 scales, got {a}, {t}, {scales}")
        if not 0.01 <= margin <= 0.49:
            raise ValueError(f"threshold margin must be in [0.01, 0.49], got {margin}")
        if not 0.001 <= outer_scale_max <= 2.0:
            raise ValueError(f"outer_scale_max must be in [0.001, 2], got {outer_scale_max}")
        self.margin, self.outer_scale_max = float(margin), float(outer_scale_max)
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float32))
        self.t = nn.Parameter(torch.tensor(t, dtype=torch.float32))
        self._clip_thresholds()
        self.scales = nn.Parameter(torch.tensor(scales, dtype=torch.float32))
        self._clip_outer()

    def piece_coefficients(self) -> tuple[torch.Tensor, ...]:
        """Per-piece ``(T, s, alpha, beta)`` (4 entries each): ``out = alpha * z + beta``."""
        t0, t1 = 2 * self.t - 1
        a0, a1 = self.a
        big_t = torch.stack([t0, t0, t1, t1])
        a = torch.stack([a0, a0, a1, a1])
        s = self.scales
        far = 1 + big_t.abs()  # distance from T to the far end of [-1, 1]
        inner = a * (s + big_t.abs()) / big_t.abs()  # a / |sh|
        outer = (1 - a) * (s + far) / far  # (1 - a) / M
        alpha = torch.stack([outer[0], inner[1], inner[2], outer[3]])
        return big_t, s, alpha, torch.sign(big_t) * a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise map of ``x`` (values in [0, 1]) to [-1, 1]."""
        return _PiecewiseSoftsign.apply(2 * x - 1, *self.piece_coefficients())

    @torch.no_grad()
    def _clip_outer(self) -> None:
        self.scales[0].clamp_(max=self.outer_scale_max)
        self.scales[3].clamp_(max=self.outer_scale_max)

    @torch.no_grad()
    def _clip_thresholds(self) -> None:
        self.t[0].clamp_(0.5 - self.margin, 0.49)
        self.t[1].clamp_(0.51, 0.5 + self.margin)

    @torch.no_grad()
    def regularize_(self) -> None:
        """Clip: a in [0.01,0.99], t0 in [0.5-margin,0.49], t1 in [0.51,0.5+margin], scales in
        [0.001,2] (the paper's ranges with the default ``margin`` 0.49; a smaller margin keeps
        both thresholds near 0.5, so fewer pixels lie within eps of one; the initial thresholds
        are clipped the same way); the outer scales also to at most ``outer_scale_max`` (default
        2: no extra bound; a small one keeps the OFF and ON pieces flat)."""
        self.a.clamp_(0.01, 0.99)
        self._clip_thresholds()
        self.scales.clamp_(0.001, 2.0)
        self._clip_outer()


class _ConvMax(torch.autograd.Function):
    """Max over groups of output channels of ``conv2d(x, weight, padding=size//2)``, sparse backward.

    ``weight`` holds ``K`` kernels in ``groups`` contiguous groups of ``K / groups``; output
    channel ``g`` is the max over group ``g``. Forward: patches, matrix product and ``amax`` in
    cache-sized chunks of images (the winning index is only computed when asked for). Backward:
    only positions with a non-zero incoming gradient in some channel (the layer's ReLU zeroes most
    of them) are visited; their winning kernels are recomputed from their patches, and both
    gradients are one ``index_add_`` each, instead of the two full convolutions autograd would run.
    """

    ROWS = 4096  # patch rows per matrix product (the scores stay in cache)

    @staticmethod
    def forward(ctx, x, weight, with_index, groups):
        k, c, s, _ = weight.shape
        b, _, h, w = x.shape
        pad = s // 2
        xp = F.pad(x, (pad, pad, pad, pad))
        wt = weight.reshape(k, -1).t()
        value = torch.empty(b * h * w, groups, dtype=x.dtype, device=x.device)
        index = torch.empty((b * h * w, groups) if with_index else (0,), dtype=torch.long,
                            device=x.device)
        step = max(1, _ConvMax.ROWS // (h * w))
        for i in range(0, b, step):
            view = xp[i:i + step].unfold(2, s, 1).unfold(3, s, 1)  # (n, c, h, w, s, s)
            cols = view.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * s * s)
            rows = slice(i * h * w, i * h * w + cols.shape[0])
            scores = (cols @ wt).view(-1, groups, k // groups)
            if with_index:
                torch.max(scores, dim=2, out=(value[rows], index[rows]))
            else:
                torch.amax(scores, dim=2, out=value[rows])
        ctx.save_for_backward(xp, weight)
        ctx.shape, ctx.groups = (b, c, h, w), groups
        ctx.mark_non_differentiable(index)
        out = value.view(b, h, w, groups).permute(0, 3, 1, 2)
        if with_index:  # global kernel index of the winner
            index = index + torch.arange(groups, device=x.device) * (k // groups)
            index = index.view(b, h, w, groups).permute(0, 3, 1, 2)
        return out, index

    @staticmethod
    def backward(ctx, grad_value, _grad_index):
        xp, weight = ctx.saved_tensors
        b, c, h, w = ctx.shape
        groups = ctx.groups
        k, _, s, _ = weight.shape
        hp, wp = xp.shape[-2:]
        g = grad_value.permute(0, 2, 3, 1).reshape(-1, groups)  # (positions, groups)
        active = g.ne(0).any(dim=1).nonzero().squeeze(1)
        g_a = g.index_select(0, active)  # (A, groups)
        # flat index into xp of every patch element of every active position
        bi, rem = active // (h * w), active % (h * w)
        base = (bi * c * hp + rem // w) * wp + rem % w
        ci, di, dj = torch.meshgrid(torch.arange(c), torch.arange(s), torch.arange(s), indexing="ij")
        offsets = ((ci * hp + di) * wp + dj).reshape(-1).to(active.device)
        targets = (base.unsqueeze(1) + offsets).reshape(-1)
        w2 = weight.reshape(k, -1)
        cols = xp.reshape(-1).index_select(0, targets).view(-1, c * s * s)  # (A, c*s*s)
        index_a = (cols @ w2.t()).view(-1, groups, k // groups).argmax(dim=2)
        index_a = index_a + torch.arange(groups, device=xp.device) * (k // groups)  # (A, groups)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            if groups == 1:
                chosen = w2.index_select(0, index_a.squeeze(1)) * g_a
            else:
                chosen = (w2[index_a] * g_a.unsqueeze(2)).sum(dim=1)
            grad_xp = torch.zeros(xp.numel(), dtype=xp.dtype, device=xp.device)
            grad_xp.index_add_(0, targets, chosen.reshape(-1))
            grad_x = grad_xp.view_as(xp)[..., s // 2:s // 2 + h, s // 2:s // 2 + w]
        if ctx.needs_input_grad[1]:
            grad_w = torch.zeros(k, c * s * s, dtype=weight.dtype, device=weight.device)
            if groups == 1:
                grad_w.index_add_(0, index_a.squeeze(1), cols * g_a)
            else:
                grad_w.index_add_(0, index_a.reshape(-1),
                                  (cols.unsqueeze(1) * g_a.unsqueeze(2)).reshape(-1, c * s * s))
            grad_w = grad_w.view_as(weight)
        return grad_x, grad_w, None, None


def conv_max(x: torch.Tensor, weight: torch.Tensor, return_index: bool = True,
             groups: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Max over channel groups of ``conv2d(x, weight, padding="same")`` and the winning kernels.

    With ``groups=1`` equal to ``F.conv2d(x, weight, padding=size // 2).max(1, keepdim=True)``
    (odd square kernels); with ``groups=G`` the ``K`` kernels form ``G`` contiguous groups of
    ``K / G`` and output channel ``g`` is the max over group ``g``. The backward pass is cheaper
    than autograd's. ``return_index=False`` skips the ``(B, G, H, W)`` index of the winning
    kernel (faster) and returns ``None``.

    Example
    -------
    >>> v, i = conv_max(torch.rand(2, 1, 8, 8), torch.randn(6, 1, 3, 3))
    >>> v.shape, i.shape
    (torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 8, 8]))
    >>> conv_max(torch.rand(2, 1, 8, 8), torch.randn(6, 1, 3, 3), groups=3)[1].shape
    torch.Size([2, 3, 8, 8])
    """
    if weight.dim() != 4 or weight.shape[2] != weight.shape[3] or weight.shape[2] % 2 == 0:
        raise ValueError(f"weight must be (K, C, s, s) with odd s, got {tuple(weight.shape)}")
    if x.dim() != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"x must be (B, {weight.shape[1]}, H, W), got {tuple(x.shape)}")
    if groups < 1 or weight.shape[0] % groups:
        raise ValueError(f"groups must divide the {weight.shape[0]} kernels, got {groups}")
    value, index = _ConvMax.apply(x, weight, bool(return_index), int(groups))
    return value, (index if return_index else None)


#: How :class:`ConvSemantic` pools its posed kernels into output channels.
CONV_CHANNELS = ("one", "kernel", "orientation")


def orientation_groups(n_kernels: int, n_rotations: int, n_bins: int) -> torch.Tensor:
    """Posed-kernel indices ``kernel * n_rotations + rotation`` grouped by stroke orientation.

    Rotation ``r`` turns a kernel by ``r * 360 / n_rotations`` degrees; its orientation (the angle
    modulo 180 degrees) falls in one of ``n_bins`` bins of width ``180 / n_bins`` centred on
    ``0, 180 / n_bins, ...`` (an orientation on a bin edge goes to the upper bin). Returns
    ``(n_bins, n_kernels * n_rotations / n_bins)``: row ``b`` lists every kernel in every
    rotation of bin ``b`` (so a rotation and its 180-degree counterpart share a bin).

    Example
    -------
    >>> orientation_groups(1, 8, 2).tolist()  # 0, 135, 180, 315 deg | 45, 90, 225, 270 deg
    [[0, 3, 4, 7], [1, 2, 5, 6]]
    """
    if n_bins < 1 or n_rotations % (2 * n_bins):
        raise ValueError(f"n_rotations ({n_rotations}) must be a multiple of 2 * orientation bins "
                         f"({n_bins}) so that every bin gets as many rotations")
    half = n_rotations // 2  # rotations r and r + half have the same orientation
    # bin of rotation r: round(orientation / bin width) mod n_bins, with ties rounded up
    width = half / n_bins  # rotations per bin and half-turn
    bins = torch.floor((torch.arange(n_rotations) % half + width / 2) / width).long() % n_bins
    flat = torch.arange(n_kernels * n_rotations).view(n_kernels, n_rotations)
    return torch.stack([flat[:, bins == b].reshape(-1) for b in range(n_bins)])


class ConvSemantic(nn.Module):
    """Convolutional semantic layer: base kernels in all rotations, max over kernels and poses.

    ``n_kernels`` base kernels ``size x size`` (init: centre 1 + N(0, 0.1^2), L2-normalised), each
    in ``n_rotations`` fixed rotations (``k * 360/n_rotations`` degrees, bilinear, zero padding),
    every posed kernel L2-normalised. Output: ``m = relu(max (x * g) / divisor)`` over a group of
    posed kernels ``g``, same spatial size (with ``cap > 0`` saturated smoothly as
    ``cap * tanh(m / cap)``, so a clear stroke reads as "present" however well it matches);
    ``channels`` (one of :data:`CONV_CHANNELS`) says which:

    * ``"one"`` — all kernels in all rotations, 1 output channel (the paper's layer);
    * ``"kernel"`` — each kernel in all its rotations, ``n_kernels`` channels;
    * ``"orientation"`` — all kernels in the rotations of one of ``n_orientations`` orientation
      bins (:func:`orientation_groups`), ``n_orientations`` channels.

    Example
    -------
    >>> layer = ConvSemantic()
    >>> layer.posed_kernels().shape
    torch.Size([2, 32, 5, 5])
    >>> ConvSemantic(channels="orientation", n_orientations=4)(torch.rand(1, 1, 9, 9)).shape
    torch.Size([1, 4, 9, 9])
    """

    def __init__(self, n_kernels: int = 2, size: int = 5, n_rotations: int = 32,
                 divisor: float = 5.0, init_noise: float = 0.1, channels: str = "one",
                 n_orientations: int = 4, cap: float = 0.0):
        super().__init__()
        if cap < 0:
            raise ValueError(f"cap must be >= 0 (0: no saturation), got {cap}")
        self.cap = float(cap)
        if size % 2 == 0 or size < 1:
            raise ValueError(f"kernel size must be odd (same padding), got {size}")
        if n_kernels < 1:
            raise ValueError(f"n_kernels must be >= 1, got {n_kernels}")
        if channels not in CONV_CHANNELS:
            raise ValueError(f"unknown conv channels {channels!r}; choose one of "
                             f"{list(CONV_CHANNELS)}")
        kernels = init_noise * torch.randn(n_kernels, size, size)
        kernels[:, size // 2, size // 2] += 1.0
        self.kernels = nn.Parameter(_unit_norm(kernels, 2))
        self.poses = RotationPoses(size, n_rotations)
        self.divisor = float(divisor)
        self.channels = channels
        if channels == "one":
            groups = torch.arange(n_kernels * n_rotations).view(1, -1)
        elif channels == "kernel":
            groups = torch.arange(n_kernels * n_rotations).view(n_kernels, -1)
        else:
            groups = orientation_groups(n_kernels, n_rotations, n_orientations)
        self.register_buffer("groups", groups, persistent=False)

    @property
    def n_poses(self) -> int:
        """Rotations per kernel."""
        return self.poses.n_poses

    @property
    def out_channels(self) -> int:
        """Output channels (pose groups)."""
        return self.groups.shape[0]

    def posed_kernels(self) -> torch.Tensor:
        """``(n_kernels, n_rotations, s, s)`` unit-norm rotated kernels."""
        return _unit_norm(self.poses(self.kernels), 2)

    def forward(self, x: torch.Tensor, return_pose: bool = False):
        """``(B, 1, H, W)`` -> ``(B, C, H, W)``; with ``return_pose`` also the index
        ``kernel * n_rotations + rotation`` of the best-matching posed kernel, ``(B, H, W)`` for
        one channel, else ``(B, C, H, W)``."""
        posed = self.posed_kernels()
        weight = posed.reshape(-1, 1, *posed.shape[-2:])
        order = self.groups.reshape(-1)
        if self.channels != "one":
            weight = weight.index_select(0, order)
        value, index = conv_max(x, weight, return_index=return_pose, groups=self.out_channels)
        out = F.relu(value / self.divisor)
        if self.cap > 0:  # saturate: a clear stroke is "present", however well it matches
            out = self.cap * torch.tanh(out / self.cap)
        if not return_pose:
            return out
        index = order[index]
        return out, (index[:, 0] if self.out_channels == 1 else index)

    @torch.no_grad()
    def regularize_(self) -> None:
        """Renormalise the base kernels to unit L2 norm."""
        self.kernels.copy_(_unit_norm(self.kernels, 2))


class AffineSemantic(nn.Module):
    """Affine semantic layer: base features matched in learnable affine poses.

    ``n_features`` base features ``feature_size^2`` (``in_channels`` of them per feature if the
    input has several channels), zero-padded to ``image_size^2`` (init kaiming-uniform,
    L2-normalised), each with ``n_poses`` learnable 2x3 affine poses
    (:class:`~whiteboxdl.semantic.samplers.AffinePoses`, ``pose_convention`` "warp" or
    "sample"; all channels of a feature move together). Each warped pose is L2-normalised (over
    all its channels); the output is ``relu(max_p <x, pose_p>)``, shape ``(B, n_features)``.

    Example
    -------
    >>> layer = AffineSemantic(n_features=8)
    >>> layer.posed_features().shape
    torch.Size([8, 32, 28, 28])
    >>> AffineSemantic(n_features=3, n_poses=4, in_channels=2).posed_features().shape
    torch.Size([3, 4, 2, 28, 28])
    """

    def __init__(self, n_features: int = 8, n_poses: int = 32, feature_size: int = 20,
                 image_size: int = 28, pose_convention: str = "warp", in_channels: int = 1,
                 translation_std: float = 1.0):
        super().__init__()
        if not 0 < feature_size <= image_size:
            raise ValueError(f"need 0 < feature_size <= image_size, got {feature_size}, {image_size}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = int(in_channels)
        shape = (n_features, feature_size, feature_size) if in_channels == 1 else \
            (n_features, in_channels, feature_size, feature_size)
        features = torch.empty(n_features, in_channels * feature_size * feature_size)
        nn.init.kaiming_uniform_(features, a=5 ** 0.5)
        self.features = nn.Parameter(_unit_norm(features, 1).view(shape))
        self.poses = AffinePoses(n_features, n_poses, convention=pose_convention,
                                 translation_std=translation_std)
        self.image_size = int(image_size)
        lead = (image_size - feature_size) // 2
        self._pad = (lead, image_size - feature_size - lead) * 2

    @property
    def n_poses(self) -> int:
        """Poses per feature."""
        return self.poses.n_poses

    @property
    def _dims(self) -> int:
        return 2 if self.in_channels == 1 else 3

    def padded_features(self) -> torch.Tensor:
        """``(n_features, [in_channels,] image_size, image_size)`` base features, zero-padded
        (centred; the channel axis only for ``in_channels > 1``)."""
        return F.pad(self.features, self._pad)

    def posed_features(self) -> torch.Tensor:
        """``(n_features, n_poses, [in_channels,] image_size, image_size)`` unit-norm warped
        features."""
        return _unit_norm(self.poses(self.padded_features()), self._dims)

    def forward(self, x: torch.Tensor, return_pose: bool = False):
        """``(B, in_channels, H, W)`` -> ``(B, n_features)``; with ``return_pose`` also the
        ``(B, n_features)`` index of the best pose."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must be (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        posed = self.posed_features()
        f, p = posed.shape[:2]
        scores = x.reshape(x.shape[0], -1) @ posed.reshape(f * p, -1).t()
        value, index = scores.view(-1, f, p).max(dim=2)
        out = F.relu(value)
        return (out, index) if return_pose else out

    @torch.no_grad()
    def regularize_(self) -> None:
        """Renormalise the base features to unit L2 norm (over all their channels)."""
        self.features.copy_(_unit_norm(self.features, self._dims))


class Logical(nn.Module):
    """Logical layer: per class, its own block top-1 masked and rolled, the other blocks dense.

    ``weight`` is ``(n_classes, n_classes * block_size)``; row ``j`` has its own block ``j`` (init
    ``[0.4, -0.1, ...]``) and the other blocks (init ``-0.1``). The own block keeps only its largest
    entry (so only that entry gets gradient) and is rolled by ``p = 0..block_size-1``;
    ``logit_j = max_p <x, pose_{j,p}>``. No constraint, so no ``regularize_``.

    Example
    -------
    >>> layer = Logical(n_classes=2)
    >>> layer.posed_weights()[0, 1].mul(10).round().add(0.0).tolist()   # class 0, roll 1
    [0.0, 4.0, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0]
    """

    def __init__(self, n_classes: int = 2, block_size: int = 4, own: float = 0.4,
                 other: float = -0.1):
        super().__init__()
        if n_classes < 2 or block_size < 1:
            raise ValueError(f"need n_classes >= 2 and block_size >= 1, got {n_classes}, {block_size}")
        self.n_classes, self.block_size = int(n_classes), int(block_size)
        weight = torch.full((n_classes, n_classes, block_size), float(other))
        weight[torch.arange(n_classes), torch.arange(n_classes), 0] = float(own)
        self.weight = nn.Parameter(weight.view(n_classes, -1))
        self.register_buffer("roll_index", block_roll_index(n_classes, block_size), persistent=False)
        self.register_buffer("own_block", torch.eye(n_classes, dtype=torch.bool), persistent=False)

    def masked_weight(self) -> torch.Tensor:
        """``weight`` with each own block reduced to its largest entry (gradient reaches only it)."""
        k, blk = self.n_classes, self.block_size
        w = self.weight.view(k, k, blk)
        top = F.one_hot(w[self.own_block].argmax(dim=1), blk).to(w.dtype)  # (k, B)
        keep = torch.where(self.own_block.unsqueeze(-1), top.unsqueeze(1), torch.ones_like(w))
        return (w * keep).view(k, -1)

    def posed_weights(self) -> torch.Tensor:
        """``(n_classes, block_size, n_classes*block_size)``: pose ``p`` of class ``j``."""
        w = self.masked_weight()
        return w.unsqueeze(1).expand(-1, self.block_size, -1).gather(2, self.roll_index)

    def forward(self, x: torch.Tensor, return_pose: bool = False):
        """``(B, n_classes*block_size)`` -> logits ``(B, n_classes)``; with ``return_pose`` also the
        ``(B, n_classes)`` best roll."""
        if x.dim() != 2 or x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"x must be (B, {self.weight.shape[1]}), got {tuple(x.shape)}")
        scores = torch.einsum("bi,jpi->bjp", x, self.posed_weights())
        value, index = scores.max(dim=2)
        return (value, index) if return_pose else value


class PosedLogical(nn.Module):
    """Logical layer with learnable poses: ``logit_j = max_r <x, w[j, r]>``.

    ``weight`` is ``(n_classes, n_poses, n_classes * block_size)``: each class has ``n_poses``
    free weight vectors over all affine features, its "poses" (which combination of its own
    parts, and none of which other parts). Unlike :class:`Logical` the own block is dense, so a
    pose can AND several own features; the max over poses is the OR. Init: pose ``r`` of class
    ``j`` is :class:`Logical`'s roll ``r mod block_size`` (own entry ``r mod block_size`` =
    ``own``, every other entry ``other``). No constraint, so no ``regularize_``.

    Example
    -------
    >>> layer = PosedLogical(n_classes=2, block_size=2, n_poses=2)
    >>> layer.weight[0].mul(10).round().add(0.0).tolist()
    [[4.0, -1.0, -1.0, -1.0], [-1.0, 4.0, -1.0, -1.0]]
    >>> layer(torch.rand(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(self, n_classes: int = 2, block_size: int = 4, n_poses: int = 4,
                 own: float = 0.4, other: float = -0.1):
        super().__init__()
        if n_classes < 2 or block_size < 1 or n_poses < 1:
            raise ValueError(f"need n_classes >= 2, block_size >= 1 and n_poses >= 1, got "
                             f"{n_classes}, {block_size}, {n_poses}")
        self.n_classes, self.block_size, self.n_poses = int(n_classes), int(block_size), int(n_poses)
        weight = torch.full((n_classes, n_poses, n_classes * block_size), float(other))
        j = torch.arange(n_classes).view(-1, 1)
        r = torch.arange(n_poses).view(1, -1)
        weight[j, r, j * block_size + r % block_size] = float(own)
        self.weight = nn.Parameter(weight)

    def posed_weights(self) -> torch.Tensor:
        """``(n_classes, n_poses, n_classes*block_size)``: pose ``r`` of class ``j``."""
        return self.weight

    def forward(self, x: torch.Tensor, return_pose: bool = False):
        """``(B, n_classes*block_size)`` -> logits ``(B, n_classes)``; with ``return_pose`` also
        the ``(B, n_classes)`` best pose."""
        if x.dim() != 2 or x.shape[1] != self.weight.shape[2]:
            raise ValueError(f"x must be (B, {self.weight.shape[2]}), got {tuple(x.shape)}")
        scores = torch.einsum("bi,jpi->bjp", x, self.weight)
        value, index = scores.max(dim=2)
        return (value, index) if return_pose else value
