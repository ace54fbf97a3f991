"""Focus on synthetic mosaics with a known answer; the seeded bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whiteboxdl.quality.focus import focus_score, make_mosaics, quadrant_masks
from whiteboxdl.quality.stats import paired_bootstrap


def _constant_pool():
    """Class c images are constant (c + 1) / 10, four images per class."""
    y = torch.arange(4).repeat_interleave(4)
    x = ((y.float() + 1) / 10).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).clone()
    return x, y


def test_mosaics_hold_two_target_tiles_at_the_flagged_quadrants():
    x, y = _constant_pool()
    mosaics, quads = make_mosaics(x, y, torch.arange(16), torch.Generator().manual_seed(0))
    assert mosaics.shape == (16, 1, 8, 8) and quads.shape == (16, 4)
    assert torch.all(quads.sum(1) == 2)
    masks = quadrant_masks((1, 8, 8), quads)
    for i in range(16):
        target_value = (y[i].item() + 1) / 10
        assert torch.allclose(mosaics[i][masks[i]], torch.tensor(target_value))
        assert not torch.isclose(mosaics[i][~masks[i]], torch.tensor(target_value)).any()


def test_focus_known_answers():
    x, y = _constant_pool()
    mosaics, quads = make_mosaics(x, y, torch.arange(16), torch.Generator().manual_seed(1))
    masks = quadrant_masks((1, 8, 8), quads).float()
    # Attribution only on the target tiles: focus 1; only elsewhere: 0.
    assert torch.allclose(focus_score(mosaics, masks, quads), torch.ones(16, dtype=torch.float64))
    assert torch.allclose(focus_score(mosaics, 1 - masks, quads),
                          torch.zeros(16, dtype=torch.float64))
    # Uniform attribution: relevance = input; focus = target mass / total mass of the mosaic.
    ones = torch.ones_like(mosaics)
    expected = (mosaics * masks).flatten(1).sum(1) / mosaics.flatten(1).sum(1)
    torch.testing.assert_close(focus_score(mosaics, ones, quads), expected.double(),
                               rtol=1e-7, atol=1e-7)
    # Negative relevance does not count: a negative target-tile attribution gives 0.
    assert torch.all(focus_score(mosaics, -masks, quads) == 0)


def test_focus_rejects_odd_images_and_single_class_pools():
    with pytest.raises(ValueError, match="even H and W"):
        make_mosaics(torch.zeros(4, 1, 7, 7), torch.arange(4), torch.arange(1))
    with pytest.raises(ValueError, match="no second image"):
        make_mosaics(torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]), torch.arange(1))


def test_bootstrap_is_seeded_and_close_to_the_normal_interval():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 2.0, size=2000)
    b = rng.normal(0.5, 2.0, size=2000)
    r1 = paired_bootstrap(a, b, seed=3)
    r2 = paired_bootstrap(a, b, seed=3)
    r3 = paired_bootstrap(a, b, seed=4)
    assert r1 == r2 and r1 != r3
    d = a - b
    half = 1.96 * d.std(ddof=1) / np.sqrt(d.size)
    assert r1.mean == pytest.approx(d.mean())
    assert r1.low == pytest.approx(d.mean() - half, abs=0.1 * half)
    assert r1.high == pytest.approx(d.mean() + half, abs=0.1 * half)
    assert r1.excludes_zero()


def test_bootstrap_drops_nan_pairs_and_validates():
    a = np.array([1.0, np.nan, 3.0, 5.0])
    b = np.array([0.0, 1.0, np.nan, 4.0])
    r = paired_bootstrap(a, b, n_boot=200)
    assert r.n == 2 and r.mean == 1.0 and r.low == r.high == 1.0
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap(a, b[:3])
