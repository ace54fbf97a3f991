"""Pattern store round trip and the settling measures on a hand-set network."""

from __future__ import annotations

import numpy as np
import pytest

from tests.stability.helpers import BIASES, PROBE, hand_net
from whiteboxdl.stability.measures import (
    OVERALL, distance_to_final, flip_rates, margin_relation, settling, spearman, steps_to_reach)
from whiteboxdl.stability.patterns import LayerInfo, Snapshot, record_patterns
from whiteboxdl.stability.store import PatternStore


def _hand_store() -> PatternStore:
    store = PatternStore()
    for step, bias in BIASES.items():
        store.add(step, record_patterns(hand_net(bias), PROBE, margins=step == 30))
    return store


def test_recorded_hand_patterns():
    # z = x + b with x = -1, +1 (computed by hand from BIASES)
    store = _hand_store()
    expected = {0: [[0, 0, 1], [1, 1, 1]], 10: [[1, 0, 1], [1, 1, 1]],
                20: [[1, 0, 1], [1, 0, 1]], 30: [[0, 0, 1], [1, 0, 1]]}
    for i, step in enumerate(store.steps):
        assert store.pattern(i, "1").astype(int).tolist() == expected[step]


def test_flip_rate_and_distance_by_hand():
    store = _hand_store()
    # one of six gates flips between each pair of snapshots
    assert flip_rates(store)["1"].tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6])
    assert flip_rates(store)[OVERALL].tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6])
    assert distance_to_final(store)["1"].tolist() == pytest.approx([1 / 6, 2 / 6, 1 / 6, 0])


def test_settling_by_hand():
    s = settling(_hand_store())["1"]
    # sample 0 unit 0 goes 0,1,1,0 -> settled at step 30; sample 1 unit 1 goes 1,1,0,0 -> step 20
    assert s.settle_step.tolist() == [[30, 0, 0], [0, 20, 0]]
    assert s.flips.tolist() == [[2, 0, 0], [0, 1, 0]]
    assert s.fraction_settled.tolist() == pytest.approx([4 / 6, 4 / 6, 5 / 6, 1])
    steps = [0, 10, 20, 30]
    assert (s.step_at(steps, 0.5), s.step_at(steps, 0.8), s.step_at(steps, 0.9)) == (0, 20, 30)


def test_margin_relation_late_gates_have_small_margin():
    store = _hand_store()
    rel = margin_relation(store, bins=2)
    # final z = [[-0.5,-2.5,1],[1.5,-0.5,3]]: the late gate (z=-0.5 of sample 0) has a small margin
    z = np.array([[-0.5, -2.5, 1], [1.5, -0.5, 3]])
    assert rel.late_median_margin == pytest.approx(0.5 / z.std(ddof=1), rel=2e-3)
    assert rel.spearman < 0


def test_store_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    relu = LayerInfo("a", "relu", (3, 5, 7))       # 105 bits per sample: not a multiple of 8
    store = PatternStore()
    snaps = []
    for step in (0, 5, 11):
        snap = Snapshot([relu], {"a": rng.random((9, 3, 5, 7)) > 0.5},
                        {"a": rng.random((9, 3, 5, 7)).astype(np.float16)})
        store.add(step, snap, {"w": step / 10})
        snaps.append(snap)
    store.meta["every"] = 5
    back = PatternStore.load(store.save(tmp_path / "p.npz"))
    assert back.steps == [0, 5, 11] and back.meta == {"every": 5}
    assert back.weight_change == [{"w": 0.0}, {"w": 0.5}, {"w": 1.1}]
    for i, snap in enumerate(snaps):
        np.testing.assert_array_equal(back.pattern(i, "a"), snap.values["a"])
    np.testing.assert_array_equal(back.margins["a"], snaps[-1].margins["a"])
    assert back.margin_step == 11


def test_store_round_trip_with_pool(tmp_path):
    from tests.stability.test_patterns import FunctionalNet
    import torch

    net = FunctionalNet()
    snap = record_patterns(net, torch.randn(5, 1, 8, 8))
    store = PatternStore()
    store.add(3, snap)
    back = PatternStore.load(store.save(tmp_path / "p.npz"))
    assert back.layers == store.layers
    for layer in snap.layers:
        np.testing.assert_array_equal(back.pattern(0, layer.name), snap.values[layer.name])


def test_store_rejects_bad_input(tmp_path):
    store = _hand_store()
    with pytest.raises(ValueError, match="not after"):
        store.add(30, record_patterns(hand_net(BIASES[0]), PROBE))
    with pytest.raises(FileNotFoundError, match="stability run"):
        PatternStore.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="no layer"):
        store.pattern(0, "nope")


def test_spearman_and_steps_to_reach():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 2, 3], [3, 2, 2, 1]) == pytest.approx(-1.0)
    # distance stays below 10% of the start from step 30 on (the bump at 20 counts)
    assert steps_to_reach([0, 10, 20, 30, 40], np.array([1.0, 0.05, 0.2, 0.05, 0.0]), 0.1) == 30


@pytest.mark.parametrize("kernel, bits", [((2, 2), 2), ((3, 3), 4), ((1, 2), 1), ((4, 5), 5)])
def test_pool_argmax_bit_planes_round_trip(kernel, bits):
    from whiteboxdl.stability.patterns import PoolGeometry
    from whiteboxdl.stability.store import index_bits, pack, unpack

    geometry = PoolGeometry(kernel, kernel, (0, 0), (1, 1), False, (9, 10))
    layer = LayerInfo("p", "maxpool", (3, 1, 7), geometry)
    value = np.random.default_rng(0).integers(0, kernel[0] * kernel[1], (5, 3, 1, 7)).astype(np.uint8)
    data = pack(layer, value)
    assert index_bits(layer) == bits and data.nbytes == -(-value.size * bits // 8)
    np.testing.assert_array_equal(unpack(layer, data, 5), value)
