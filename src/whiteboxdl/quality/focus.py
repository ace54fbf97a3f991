"""Focus (Arias-Duart et al.) on 2×2 mosaics built from a labelled dataset.

Two mosaic recipes:

``tiles="half"`` (the spec's text, the default)
    four tiles, each an image downscaled by 2 (so the mosaic has the model's input size: 112²
    tiles in a 224² mosaic): the anchor image and another image of its class, two images of
    other classes, at random positions; relevance ``input ⊙ attribution``.
``tiles="full", layout="same-image"`` (the paper's ``evaluate_focus.py``)
    full-size tiles (a 448² mosaic of 224² images, Quantus's ``build_single_mosaic``): the anchor
    image itself twice, at two random quadrants, and two distractor images whose classes are
    drawn uniformly (with replacement) from the other classes of the pool; relevance = the
    attribution itself (``relevance="attribution"``).

Focus is the share of the positive relevance that falls on the target-class quadrants. An
explainer that ignores the class scores about 0.5 (chance); a perfectly class-discriminative one
scores 1.

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


#: What counts as relevance: the spec's ``input ⊙ attribution`` or the paper code's attribution.
RELEVANCES = ("input_x_attribution", "attribution")
#: Mosaic recipes: tile size and which target tiles.
TILES = ("half", "full")
LAYOUTS = ("same-class", "same-image")


def focus_score(mosaic: Tensor, attribution: Tensor, quadrants: Tensor,
                relevance: str = "input_x_attribution") -> Tensor:
    """Share of the positive relevance (``mosaic ⊙ attribution``, or the ``attribution``
    itself) on the target quadrants (N,)."""
    if mosaic.shape != attribution.shape or mosaic.ndim != 4:
        raise ValueError(f"mosaic {tuple(mosaic.shape)} and attribution {tuple(attribution.shape)} "
                         "must both be (N, C, H, W)")
    if quadrants.shape != (mosaic.shape[0], 4):
        raise ValueError(f"quadrants must be ({mosaic.shape[0]}, 4), got {tuple(quadrants.shape)}")
    if relevance not in RELEVANCES:
        raise ValueError(f"relevance must be one of {RELEVANCES}, got {relevance!r}")
    rel = attribution.double() if relevance == "attribution" else \
        mosaic.double() * attribution.double()
    relevance_map = rel.clamp_min(0)
    on_target = (relevance_map * quadrant_masks(mosaic.shape[1:], quadrants)).flatten(1).sum(1)
    return on_target / (relevance_map.flatten(1).sum(1) + 1e-9)


def _tile(images: Tensor) -> Tensor:
    h, w = images.shape[-2:]
    return F.interpolate(images, size=(h // 2, w // 2), mode="area")


def _assemble(tiles: Tensor) -> Tensor:
    """Four tiles (4, C, h, w), in the order TL, TR, BL, BR, as one (C, 2h, 2w) mosaic."""
    top = torch.cat([tiles[0], tiles[1]], dim=-1)
    bottom = torch.cat([tiles[2], tiles[3]], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def make_mosaics(pool_x: Tensor, pool_y: Tensor, anchors: Tensor,
                 generator: torch.Generator | None = None, *, tiles: str = "half",
                 layout: str = "same-class") -> tuple[Tensor, Tensor]:
    """Mosaics for the pool images at indices ``anchors``.

    ``layout="same-class"``: the anchor, another pool image of its class and two pool images of
    other classes, at a random arrangement. ``layout="same-image"``: the anchor twice at two
    random quadrants and, for the other two, an image of each of two classes drawn uniformly
    with replacement from the pool's other classes. ``tiles``: ``"half"`` (downscaled by 2, the
    mosaic has the pool's size) or ``"full"`` (twice the pool's size). Returns ``(mosaics
    (N, C, H, W), quadrants (N, 4))`` where ``quadrants`` flags the target-class tiles (order TL,
    TR, BL, BR).
    """
    if tiles not in TILES or layout not in LAYOUTS:
        raise ValueError(f"tiles must be one of {TILES} and layout one of {LAYOUTS}, got "
                         f"{tiles!r}, {layout!r}")
    if pool_x.ndim != 4 or (tiles == "half" and (pool_x.shape[-2] % 2 or pool_x.shape[-1] % 2)):
        raise ValueError(f"mosaics need images (N, C, H, W) with even H and W, "
                         f"got {tuple(pool_x.shape)}")
    pick = _same_class if layout == "same-class" else _same_image
    mosaics, quads = [], []
    for i in anchors.tolist():
        sources, target = pick(pool_y, i, generator)
        images = pool_x[sources]
        tile = _tile(images) if tiles == "half" else images
        mosaics.append(_assemble(tile))
        quads.append(target)
    return torch.stack(mosaics), torch.stack(quads)


def _same_class(pool_y: Tensor, i: int, generator: torch.Generator | None
                ) -> tuple[Tensor, Tensor]:
    """Pool indices for TL, TR, BL, BR and the target flags: anchor + a same-class partner."""
    cls = int(pool_y[i])
    same = torch.nonzero((pool_y == cls) & (torch.arange(len(pool_y)) != i))[:, 0]
    other = torch.nonzero(pool_y != cls)[:, 0]
    if len(same) == 0 or len(other) == 0:
        raise ValueError(f"the pool has no second image of class {cls} or no other class; "
                         "use a larger pool for Focus mosaics")
    partner = same[torch.randint(len(same), (1,), generator=generator)]
    others = other[torch.randint(len(other), (2,), generator=generator)]
    order = torch.randperm(4, generator=generator)                # slot q gets source order[q]
    return torch.cat([torch.tensor([i]), partner, others])[order], order < 2


def _same_image(pool_y: Tensor, i: int, generator: torch.Generator | None
                ) -> tuple[Tensor, Tensor]:
    """The anchor at two random quadrants; distractors of two random other classes."""
    cls = int(pool_y[i])
    classes = torch.unique(pool_y)
    classes = classes[classes != cls]
    if len(classes) == 0:
        raise ValueError(f"the pool has no class other than {cls}; use a larger pool for Focus")
    sources = torch.full((4,), i, dtype=torch.long)
    target = torch.zeros(4, dtype=torch.bool)
    target[torch.randperm(4, generator=generator)[:2]] = True
    for q in torch.nonzero(~target)[:, 0].tolist():
        c = classes[torch.randint(len(classes), (1,), generator=generator)]
        members = torch.nonzero(pool_y == c)[:, 0]
        sources[q] = members[torch.randint(len(members), (1,), generator=generator)]
    return sources, target
