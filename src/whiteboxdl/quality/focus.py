"""Focus (Arias-Duart et al.) on 2×2 mosaics built from a labelled dataset.

A mosaic holds four tiles, each an image downscaled by 2 (so the mosaic has the model's input
size; spec: 112² tiles in a 224² mosaic): two tiles of the target class and two of other classes,
at random positions. Relevance is ``input ⊙ attribution``; Focus is the share of the positive
relevance that falls on the target-class quadrants. An explainer that ignores the class scores
about 0.5 (chance); a perfectly class-discriminative one scores 1.

Example
-------
>>> import torch
>>> from whiteboxdl.quality.focus import focus_score
>>> x = torch.ones(1, 1, 4, 4)
>>> a = torch.zeros(1, 1, 4, 4); a[..., :2, :2] = 1; a[..., 2:, 2:] = 1
>>> quadrants = torch.tensor([[True, False, False, True]])      # TL, TR, BL, BR
>>> round(focus_score(x, a, quadrants).item(), 6)
1.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def quadrant_masks(shape: tuple[int, ...], quadrants: Tensor) -> Tensor:
    """Boolean masks (N, C, H, W) of the quadrants flagged in ``quadrants`` (N, 4: TL, TR, BL, BR)."""
    c, h, w = shape
    hh, hw = h // 2, w // 2
    masks = torch.zeros(quadrants.shape[0], c, h, w, dtype=torch.bool)
    for q, (rows, cols) in enumerate([(slice(0, hh), slice(0, hw)), (slice(0, hh), slice(hw, w)),
                                      (slice(hh, h), slice(0, hw)), (slice(hh, h), slice(hw, w))]):
        masks[:, :, rows, cols] |= quadrants[:, q, None, None, None]
    return masks


def focus_score(mosaic: Tensor, attribution: Tensor, quadrants: Tensor) -> Tensor:
    """Share of the positive relevance ``mosaic ⊙ attribution`` on the target quadrants (N,)."""
    if mosaic.shape != attribution.shape or mosaic.ndim != 4:
        raise ValueError(f"mosaic {tuple(mosaic.shape)} and attribution {tuple(attribution.shape)} "
                         "must both be (N, C, H, W)")
    if quadrants.shape != (mosaic.shape[0], 4):
        raise ValueError(f"quadrants must be ({mosaic.shape[0]}, 4), got {tuple(quadrants.shape)}")
    relevance = (mosaic.double() * attribution.double()).clamp_min(0)
    on_target = (relevance * quadrant_masks(mosaic.shape[1:], quadrants)).flatten(1).sum(1)
    return on_target / (relevance.flatten(1).sum(1) + 1e-9)


def _tile(images: Tensor) -> Tensor:
    h, w = images.shape[-2:]
    return F.interpolate(images, size=(h // 2, w // 2), mode="area")


def make_mosaics(pool_x: Tensor, pool_y: Tensor, anchors: Tensor,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Mosaics for the pool images at indices ``anchors``.

    Each mosaic holds the anchor, another pool image of the anchor's class and two pool images of
    other classes, at a random arrangement. Returns ``(mosaics (N, C, H, W), quadrants (N, 4))``
    where ``quadrants`` flags the target-class tiles (order TL, TR, BL, BR).
    """
    if pool_x.ndim != 4 or pool_x.shape[-2] % 2 or pool_x.shape[-1] % 2:
        raise ValueError(f"mosaics need images (N, C, H, W) with even H and W, "
                         f"got {tuple(pool_x.shape)}")
    mosaics, quads = [], []
    for i in anchors.tolist():
        cls = int(pool_y[i])
        same = torch.nonzero((pool_y == cls) & (torch.arange(len(pool_y)) != i))[:, 0]
        other = torch.nonzero(pool_y != cls)[:, 0]
        if len(same) == 0 or len(other) == 0:
            raise ValueError(f"the pool has no second image of class {cls} or no other class; "
                             "use a larger pool for Focus mosaics")
        partner = same[torch.randint(len(same), (1,), generator=generator)]
        others = other[torch.randint(len(other), (2,), generator=generator)]
        order = torch.randperm(4, generator=generator)            # slot q gets tile order[q]
        tiles = _tile(pool_x[torch.cat([torch.tensor([i]), partner, others])])[order]
        top = torch.cat([tiles[0], tiles[1]], dim=-1)
        bottom = torch.cat([tiles[2], tiles[3]], dim=-1)
        mosaics.append(torch.cat([top, bottom], dim=-2))
        quads.append(order < 2)
    return torch.stack(mosaics), torch.stack(quads)
