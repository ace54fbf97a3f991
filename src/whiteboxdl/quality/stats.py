"""Seeded bootstrap intervals for paired differences of per-image scores.

Example
-------
>>> import numpy as np
>>> from whiteboxdl.quality.stats import paired_bootstrap
>>> a, b = np.arange(100.0), np.arange(100.0) - 1.0
>>> r = paired_bootstrap(a, b, seed=0)
>>> (r.mean, r.low, r.high, r.n)
(1.0, 1.0, 1.0, 100)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapResult:
    """Mean of the paired differences, its percentile interval and the number of pairs used."""

    mean: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, n_boot: int = 10_000, level: float = 0.95,
                     seed: int = 0) -> BootstrapResult:
    """Percentile bootstrap interval of ``mean(a − b)`` over images (non-finite pairs dropped).

    Images are resampled with replacement ``n_boot`` times from ``numpy.random.default_rng(seed)``,
    so the interval is reproducible.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores must be two 1-D arrays of equal length, got {a.shape} "
                         f"and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    d = a - b
    d = d[np.isfinite(d)]
    if d.size == 0:
        return BootstrapResult(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 1000):            # chunks keep memory small for large n
        stop = min(n_boot, start + 1000)
        idx = rng.integers(0, d.size, size=(stop - start, d.size))
        means[start:stop] = d[idx].mean(1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return BootstrapResult(float(d.mean()), float(low), float(high), int(d.size))
