"""The proof-of-concept semantic-feature network (MNIST) and its processing steps.

``semantic_mnist(digits=(3, 5))`` is the paper's 4,810-parameter network: two-step -> conv
semantic (2 kernels x 32 rotations) -> affine semantic (8 features x 32 poses) -> logical
(2 classes). For ``k`` digits it has ``4k`` affine features (4 per class) and ``k`` logical blocks.

Example
-------
>>> import torch
>>> model = semantic_mnist(digits=(3, 5))
>>> sum(p.numel() for p in model.parameters())
4810
>>> steps = processing_steps(model, torch.rand(2, 1, 28, 28))
>>> steps["probs"].shape, steps["class_pose_image"].shape
(torch.Size([2, 2]), torch.Size([2, 2, 28, 28]))
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from whiteboxdl.semantic.layers import (CONV_CHANNELS, AffineSemantic, ConvSemantic, Logical,
                                        PosedLogical, TwoStep)

#: The builder model files of semantic networks name (see ``whiteboxdl.models.registry``).
BUILDER = "whiteboxdl.semantic.network:semantic_mnist"
#: Affine features per class (one logical block each) of the paper's design.
FEATURES_PER_CLASS = 4

#: Logical layers: ``"roll"`` (the paper's :class:`Logical`) or ``"poses"`` (:class:`PosedLogical`).
LOGICAL = ("roll", "poses")


class SemanticNetwork(nn.Module):
    """two-step -> conv semantic -> affine semantic -> logical; inputs ``(B, 1, 28, 28)`` in [0, 1].

    ``two_step=False`` / ``conv=False`` drop a layer (its input passes through unchanged), for
    ablations. ``class_names`` label the logits (e.g. ``("3", "5")``). ``pose_convention`` says how
    the affine poses act (see :data:`~whiteboxdl.semantic.samplers.POSE_CONVENTIONS`). The other
    arguments size the layers (defaults: the paper's): ``features_per_class`` affine features per
    class, each in ``affine_poses`` poses of a ``feature_size`` template (initial translations
    N(0, ``translation_std``^2) pixels); ``conv_kernels`` base kernels pooled into channels as
    ``conv_channels`` says (``"one"``, ``"kernel"`` or ``"orientation"`` with ``orientations``
    bins, see :class:`ConvSemantic`); ``logical`` one of :data:`LOGICAL`, with
    ``logical_poses`` poses per class for ``"poses"``; ``threshold_margin`` bounds the
    two-step thresholds to ``[0.5 - margin, 0.49]`` and ``[0.51, 0.5 + margin]`` and
    ``outer_scale_max`` its two outer scales (small: flat OFF / ON pieces);
    ``conv_cap > 0`` saturates the conv output at that level (``cap * tanh(m / cap)``).
    """

    def __init__(self, n_classes: int = 2, two_step: bool = True, conv: bool = True,
                 class_names: Sequence[str] | None = None, image_size: int = 28,
                 pose_convention: str = "warp", features_per_class: int = FEATURES_PER_CLASS,
                 affine_poses: int = 32, feature_size: int = 20, translation_std: float = 1.0,
                 conv_kernels: int = 2, conv_channels: str = "one", orientations: int = 4,
                 logical: str = "roll", logical_poses: int = 4, threshold_margin: float = 0.49,
                 conv_cap: float = 0.0, outer_scale_max: float = 2.0):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        names = tuple(str(c) for c in (class_names or range(n_classes)))
        if len(names) != n_classes:
            raise ValueError(f"{len(names)} class names for {n_classes} classes: {names}")
        if logical not in LOGICAL:
            raise ValueError(f"unknown logical layer {logical!r}; choose one of {list(LOGICAL)}")
        if features_per_class < 1:
            raise ValueError(f"features_per_class must be >= 1, got {features_per_class}")
        self.class_names = names
        self.image_size = int(image_size)
        self.two_step = TwoStep(margin=threshold_margin,
                                outer_scale_max=outer_scale_max) if two_step else None
        self.conv = ConvSemantic(n_kernels=conv_kernels, channels=conv_channels,
                                 n_orientations=orientations, cap=conv_cap) if conv else None
        channels = self.conv.out_channels if self.conv is not None else 1
        self.affine = AffineSemantic(n_features=features_per_class * n_classes,
                                     n_poses=affine_poses, feature_size=feature_size,
                                     image_size=image_size, pose_convention=pose_convention,
                                     in_channels=channels, translation_std=translation_std)
        self.logical: Logical | PosedLogical
        if logical == "roll":
            self.logical = Logical(n_classes=n_classes, block_size=features_per_class)
        else:
            self.logical = PosedLogical(n_classes=n_classes, block_size=features_per_class,
                                        n_poses=logical_poses)

    @property
    def n_classes(self) -> int:
        """Number of output logits."""
        return self.logical.n_classes

    def _check_input(self, x: torch.Tensor) -> None:
        s = self.image_size
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, s, s):
            raise ValueError(f"expected images of shape (B, 1, {s}, {s}) in [0, 1], "
                             f"got {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Input of the affine layer: conv(two_step(x)), skipping absent layers."""
        self._check_input(x)
        h = self.two_step(x) if self.two_step is not None else x
        return self.conv(h) if self.conv is not None else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes)`` of images ``(B, 1, 28, 28)`` in [0, 1]."""
        return self.logical(self.affine(self.features(x)))


#: Named designs for :func:`semantic_mnist`'s ``arch``: the layer sizes each one sets (explicit
#: keyword arguments override them). ``"poc"`` is the paper's network; the others are the
#: structural variants of the ten-digit search (``BENCHMARKS.md``): 8 affine features per class,
#: 4 orientation channels, 4 conv kernels as channels, 8 learnable logical poses per class, a
#: saturated conv output, two-step thresholds kept within 0.15 of 0.5, and that with flat outer
#: pieces (margin 0.1).
ARCHS: dict[str, dict] = {
    "poc": {},
    "wide": {"features_per_class": 8},
    "orientation": {"conv_channels": "orientation", "orientations": 4},
    "kernels": {"conv_kernels": 4, "conv_channels": "kernel"},
    "posed-logic": {"logical": "poses", "logical_poses": 8},
    "capped": {"conv_cap": 0.5},
    "margin": {"threshold_margin": 0.15},
    "flat-margin": {"threshold_margin": 0.1, "outer_scale_max": 0.01},
}

#: The allowed values of the string size arguments.
SIZE_CHOICES: dict[str, tuple[str, ...]] = {"conv_channels": CONV_CHANNELS, "logical": LOGICAL}

#: Size arguments of :func:`semantic_mnist` with their type and inclusive bounds (model files
#: carry them, so they are validated; strings: :data:`SIZE_CHOICES`).
SIZE_BOUNDS: dict[str, tuple[type, Any, Any]] = {
    "features_per_class": (int, 1, 64),
    "affine_poses": (int, 1, 256),
    "feature_size": (int, 4, 28),
    "translation_std": (float, 0.0, 10.0),
    "conv_kernels": (int, 1, 32),
    "conv_channels": (str, None, None),
    "orientations": (int, 1, 16),
    "logical": (str, None, None),
    "logical_poses": (int, 1, 64),
    "threshold_margin": (float, 0.01, 0.49),
    "conv_cap": (float, 0.0, 1.0),
    "outer_scale_max": (float, 0.001, 2.0),
}


def semantic_mnist(digits: Sequence[int] = (3, 5), two_step: bool = True,
                   conv: bool = True, pose_convention: str = "warp", arch: str = "poc", *,
                   features_per_class: int | None = None, affine_poses: int | None = None,
                   feature_size: int | None = None, translation_std: float | None = None,
                   conv_kernels: int | None = None, conv_channels: str | None = None,
                   orientations: int | None = None, logical: str | None = None,
                   logical_poses: int | None = None, threshold_margin: float | None = None,
                   conv_cap: float | None = None,
                   outer_scale_max: float | None = None) -> SemanticNetwork:
    """The MNIST semantic-feature network for ``digits`` (logit ``i`` = ``digits[i]``).

    Parameters
    ----------
    digits : the classes, 2 to 10 distinct digits; ``(3, 5)`` gives the 4,810-parameter PoC.
    two_step, conv : keep the two-step / convolutional layer (``False`` for ablations).
    pose_convention : ``"warp"`` (the reference code's) or ``"sample"`` (``grid_sample``'s).
    arch : a named design of :data:`ARCHS` (``"poc"``: the paper's layer sizes, 4 affine features
        per class; ``"margin"``: the ten-digit design, two-step thresholds within 0.15 of 0.5).
    features_per_class, ..., outer_scale_max : override the design's layer sizes (``None``: the
        design's value); types and bounds in :data:`SIZE_BOUNDS`, meanings in
        :class:`SemanticNetwork`.

    Example
    -------
    >>> semantic_mnist(range(10)).n_classes
    10
    >>> semantic_mnist(range(10), features_per_class=8).affine.features.shape
    torch.Size([80, 20, 20])
    >>> semantic_mnist(range(10), arch="margin").two_step.margin
    0.15
    """
    given = {"features_per_class": features_per_class, "affine_poses": affine_poses,
             "feature_size": feature_size, "translation_std": translation_std,
             "conv_kernels": conv_kernels, "conv_channels": conv_channels,
             "orientations": orientations, "logical": logical, "logical_poses": logical_poses,
             "threshold_margin": threshold_margin, "conv_cap": conv_cap,
             "outer_scale_max": outer_scale_max}
    sizes = {name: value for name, value in given.items() if value is not None}
    digits = [int(d) for d in digits]
    if len(digits) < 2 or len(set(digits)) != len(digits) or not all(0 <= d <= 9 for d in digits):
        raise ValueError(f"digits must be 2 to 10 distinct values in 0..9, got {digits}")
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    for name, value in sizes.items():
        kind, low, high = SIZE_BOUNDS[name]
        ok = isinstance(value, kind) and not isinstance(value, bool) or \
            (kind is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok or (low is not None and not low <= value <= high):
            bounds = f" in [{low}, {high}]" if low is not None else ""
            raise ValueError(f"{name} must be a {kind.__name__}{bounds}, got {value!r}")
        if name in SIZE_CHOICES and value not in SIZE_CHOICES[name]:
            raise ValueError(f"{name} must be one of {list(SIZE_CHOICES[name])}, got {value!r}")
    return SemanticNetwork(n_classes=len(digits), two_step=two_step, conv=conv,
                           class_names=[str(d) for d in digits], pose_convention=pose_convention,
                           **{**ARCHS[arch], **sizes})


@torch.no_grad()
def processing_steps(model: SemanticNetwork, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """Every intermediate output of ``model`` on ``x`` and the poses that matched.

    Returns a dict of detached tensors (B = batch, F = affine features, k = classes):

    ========================  ===================  ==============================================
    key                       shape                meaning
    ========================  ===================  ==============================================
    ``input``                 (B, 1, 28, 28)       ``x``
    ``two_step``              (B, 1, 28, 28)       two-step output in [-1, 1] (= input if absent)
    ``conv``                  (B, C, 28, 28)       conv semantic output, C channels (1 for the
                                                   paper's layer; = its input if absent)
    ``conv_pose``             (B, [C,] 28, 28)     best ``kernel * 32 + rotation`` per pixel
                              or None              (and channel, if C > 1)
    ``affine``                (B, F)               affine match values (after ReLU)
    ``affine_pose``           (B, F)               best pose index of each feature
    ``logits``, ``probs``     (B, k)               class scores and softmax probabilities
    ``prediction``            (B,)                 argmax class index
    ``logical_pose``          (B, k)               best roll of each class's own block
    ``class_feature``         (B, k)               best affine feature (global index) in class
                                                   ``j``'s block
    ``class_match``           (B, k)               its match value
    ``class_pose_image``      (B, k, [C,] 28, 28)  its best-matching unit-norm pose
    ========================  ===================  ==============================================
    """
    if not isinstance(model, SemanticNetwork):
        raise ValueError(f"processing_steps needs a SemanticNetwork, got {type(model).__name__}")
    model._check_input(x)
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError(f"inputs must be finite and in [0, 1], got range "
                         f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")
    x = x.detach()
    h = model.two_step(x) if model.two_step is not None else x
    conv_pose = None
    c = h
    if model.conv is not None:
        c, conv_pose = model.conv(h, return_pose=True)
    affine, affine_pose = model.affine(c, return_pose=True)
    logits, logical_pose = model.logical(affine, return_pose=True)
    k, blk = model.n_classes, model.logical.block_size
    block_values, block_arg = affine.view(-1, k, blk).max(dim=2)
    class_feature = block_arg + torch.arange(k) * blk
    posed = model.affine.posed_features()  # (F, P, H, W)
    best_pose = affine_pose.gather(1, class_feature)
    return {
        "input": x,
        "two_step": h,
        "conv": c,
        "conv_pose": conv_pose,
        "affine": affine,
        "affine_pose": affine_pose,
        "logits": logits,
        "probs": logits.softmax(dim=1),
        "prediction": logits.argmax(dim=1),
        "logical_pose": logical_pose,
        "class_feature": class_feature,
        "class_match": block_values,
        "class_pose_image": posed[class_feature, best_pose],
    }
