"""Reliability curve: endpoints, an independent brute-force reference, and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whiteboxdl.robustness.reliability import (curve_rows, plot_reliability,
                                               reliability_curve)


def _brute_force(correct, scores, threshold):
    accepted = scores >= threshold
    tp = (accepted & correct).sum()
    return tp / accepted.sum(), tp / correct.sum()


def test_matches_brute_force_at_every_threshold():
    rng = np.random.default_rng(0)
    scores = np.round(rng.uniform(0.5, 1.0, 300), 2)  # many ties
    correct = rng.uniform(size=300) < scores  # confident inputs are more often correct
    curve = reliability_curve(correct, scores)
    assert np.all(np.diff(curve.thresholds) < 0)
    for t, p, r in zip(curve.thresholds, curve.precision, curve.recall):
        assert (p, r) == pytest.approx(_brute_force(correct, scores, t))
    assert sorted(curve.thresholds) == sorted(set(scores))


def test_endpoints():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.5, 1.0, 200)
    correct = rng.uniform(size=200) < 0.9
    curve = reliability_curve(torch.tensor(correct), torch.tensor(scores))
    # 100% recall: every input accepted, precision = adversarial accuracy
    assert curve.precision_at(1.0) == pytest.approx(correct.mean()) == curve.adversarial_accuracy
    assert curve.recall[-1] == 1.0
    # the highest threshold accepts only the top-scored input
    assert curve.precision[0] == float(correct[np.argmax(scores)])


def test_precision_at_80_percent_recall_is_read_at_the_highest_threshold_reaching_it():
    correct = np.array([1, 1, 0, 1, 1, 0, 1, 0, 1, 1], dtype=bool)  # 7 correct
    scores = np.linspace(1.0, 0.1, 10)
    curve = reliability_curve(correct, scores)
    # recall >= 0.8 needs 6 of 7 correct: the top 9 inputs, 6 correct of 9 accepted... count:
    top = np.cumsum(correct)
    k = int(np.argmax(top >= 0.8 * 7)) + 1
    assert curve.precision_at(0.8) == pytest.approx(top[k - 1] / k)
    assert curve.precision_at(0.2) == 1.0


def test_perfect_ranking_gives_precision_one_until_full_recall():
    correct = np.array([True] * 9 + [False])
    curve = reliability_curve(correct, np.linspace(1, 0.5, 10))
    assert curve.precision_at(0.99) == 1.0 and curve.precision_at(1.0) == 0.9


def test_bad_inputs():
    with pytest.raises(ValueError, match="length"):
        reliability_curve([True, False], [0.5])
    with pytest.raises(ValueError, match="no input is correct"):
        reliability_curve([False, False], [0.5, 0.6])
    with pytest.raises(ValueError, match="non-finite"):
        reliability_curve([True, False], [np.nan, 0.6])
    with pytest.raises(ValueError, match="recall"):
        reliability_curve([True], [0.6]).precision_at(0.0)


def test_plot_and_table(tmp_path):
    curve = reliability_curve([True, False, True], [0.9, 0.8, 0.7])
    path = plot_reliability({"model": curve}, tmp_path / "rel.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, rows = curve_rows({"model": curve}, recalls=(0.5, 1.0))
    assert rows == [["model", "100.00%", "66.67%"]]
