"""hw_sim.CostTable: consistency with layer_cost, policy queries, masking queries (brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import hw_sim
from hw_sim import networks

TINY = [
    hw_sim.LayerShape.conv2d(3, 16, 3, 16, padding=1),
    hw_sim.LayerShape.conv2d(16, 16, 3, 16, padding=1, groups=16),
    hw_sim.LayerShape.linear(16 * 256, 10),
]


@pytest.mark.parametrize("profile", list(hw_sim.PROFILES))
def test_table_equals_a_plain_loop_over_layer_cost(profile):
    # The reference: an independent scalar call per (layer, w, a) through the public layer_cost.
    shapes = networks.mobilenet_v2()[:12] + networks.mobilenet_v2()[-2:]
    acc = hw_sim.get_accelerator(profile)
    table = hw_sim.CostTable(shapes, acc, bits=range(2, 9), batch=2)
    for i, layer in enumerate(shapes):
        for wi, w in enumerate(range(2, 9)):
            for ai, a in enumerate(range(2, 9)):
                c = acc.layer_cost(layer, w, a, batch=2)
                assert table.latency[i, wi, ai] == pytest.approx(c.latency_s, rel=1e-12)
                assert table.energy[i, wi, ai] == pytest.approx(c.energy_j, rel=1e-12)
                assert table.size[i, wi, ai] == pytest.approx(c.size_bytes, rel=1e-12)
                assert table.dram_bytes[i, wi, ai] == pytest.approx(c.dram_bytes, rel=1e-12)
                assert table.bound(i, w, a) == c.bound


def test_arrays_are_read_only_and_shaped():
    table = hw_sim.CostTable(TINY, "bitfusion", bits=[2, 4, 8])
    assert table.latency.shape == table.energy.shape == table.size.shape == (3, 3, 3)
    with pytest.raises(ValueError):
        table.latency[0, 0, 0] = 0.0
    assert table.bits.tolist() == [2, 4, 8]
    assert table.bit_index(4) == 1
    assert table.bit_index([8, 2]).tolist() == [2, 0]


def test_policy_cost_forms_agree_with_a_manual_sum():
    table = hw_sim.CostTable(TINY, "bismo-edge")
    w, a = [8, 3, 5], [8, 2, 7]
    manual = sum(table.latency[i, table.bit_index(w[i]), table.bit_index(a[i])] for i in range(3))
    assert table.policy_cost(w, a) == pytest.approx(manual, rel=1e-15)
    assert table.policy_cost(np.array(w), np.array(a)) == pytest.approx(manual, rel=1e-15)
    assert table.policy_cost(np.array([w, a]).T) == pytest.approx(manual, rel=1e-15)
    wi, ai = table.bit_index(w), table.bit_index(a)
    assert table.policy_cost_index(wi, ai) == pytest.approx(manual, rel=1e-15)
    costs = table.policy_costs(w, a)
    assert costs.latency_s == pytest.approx(manual, rel=1e-15)
    assert costs.energy_j == pytest.approx(table.policy_cost(w, a, metric="energy"))
    # size: weights only, so 3*16*9*8 + 16*9*3 + 40960*5 bits
    assert costs.size_bytes == pytest.approx((432 * 8 + 144 * 3 + 40960 * 5) / 8)


def test_policy_cost_rejects_bad_policies():
    table = hw_sim.CostTable(TINY, "bismo-edge")
    with pytest.raises(ValueError, match="w_bits"):
        table.policy_cost([8, 9, 8], [8, 8, 8])  # 9 is not on the table's bit axis
    with pytest.raises(ValueError, match="a_bits"):
        table.policy_cost([8, 8, 8], [8, 8])
    with pytest.raises(ValueError, match="metric"):
        table.policy_cost([8, 8, 8], [8, 8, 8], metric="area")
    with pytest.raises(ValueError, match="w_index"):
        table.policy_cost_index(np.array([0, 1, 7]), np.array([0, 0, 0]))
    # negative indices count from the end, as in numpy; beyond that they raise
    assert table.policy_cost_index(
        np.array([0, -1, 0]), np.array([0, 0, 0])
    ) == table.policy_cost_index(np.array([0, 6, 0]), np.array([0, 0, 0]))
    with pytest.raises(ValueError, match="a_index contains \\[-8\\]"):
        table.policy_cost_index(np.array([0, 0, 0]), np.array([0, -8, 0]))
    with pytest.raises(ValueError, match="w_index has shape"):
        table.policy_cost_index(np.array([0, 0]), np.array([0, 0, 0]))
    with pytest.raises(TypeError, match="a_bits"):
        table.policy_cost([8, 8, 8], [8.0, 8.0, 8.0])
    with pytest.raises(ValueError, match="a_bits contains \\[-2, 0\\]"):
        table.policy_cost([8, 8, 8], [-2, 8, 0])
    # a single width applies to every layer
    assert table.policy_cost(4, 4) == table.policy_cost([4] * 3, [4] * 3)
    with pytest.raises(ValueError, match="bits"):
        table.bit_index(1)


def _brute_force_completion(table: hw_sim.CostTable, metric: str, mask: np.ndarray) -> np.ndarray:
    # Enumerate every allowed policy of the suffix layers i..L-1 and take the cheapest total.
    data = table.metric(metric)
    nb = table.n_bits
    out = []
    for start in range(table.n_layers + 1):
        best = np.inf if start < table.n_layers else 0.0
        choices = [
            [(w, a) for w in range(nb) for a in range(nb) if mask[i, w, a]]
            for i in range(start, table.n_layers)
        ]
        for combo in itertools.product(*choices):
            best = min(best, sum(data[start + j, w, a] for j, (w, a) in enumerate(combo)))
        out.append(best)
    return np.array(out)


@pytest.mark.parametrize("metric", hw_sim.METRICS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_min_completion_cost_matches_brute_force(metric, seed):
    table = hw_sim.CostTable(TINY, "bitfusion", bits=[2, 3, 4, 8])
    rng = np.random.default_rng(seed)
    mask = rng.random((3, 4, 4)) < 0.4
    mask[:, 0, 0] |= ~mask.reshape(3, -1).any(axis=1)  # keep every layer feasible
    got = table.min_completion_cost(metric, allowed=mask)
    assert got.shape == (4,) and got[-1] == 0.0
    np.testing.assert_allclose(got, _brute_force_completion(table, metric, mask), rtol=1e-12)
    # unconstrained: every width allowed
    np.testing.assert_allclose(
        table.min_completion_cost(metric),
        _brute_force_completion(table, metric, np.ones((3, 4, 4), bool)),
        rtol=1e-12,
    )


def test_per_layer_allowed_lists_fix_first_and_last_layers():
    table = hw_sim.CostTable(TINY, "bismo-edge")
    i8 = table.bit_index(8)
    allowed = [([8], [8]), None, ([8], [8])]
    per_layer = table.min_layer_cost("latency", allowed)
    assert per_layer[0] == table.latency[0, i8, i8]
    assert per_layer[2] == table.latency[2, i8, i8]
    assert per_layer[1] == table.latency[1].min()
    mask = table.allowed_mask(allowed)
    assert mask.sum() == 1 + 49 + 1


def test_two_step_mode_weight_chosen_before_activation():
    # HAQ chooses a layer's weight bits, then its activation bits: after w is fixed at 4 the
    # layer's cheapest completion is the minimum over a with w = 4.
    table = hw_sim.CostTable(TINY, "bismo-edge")
    w4 = table.bit_index(4)
    allowed = [(None, None), ([4], None), None]
    got = table.min_completion_cost("energy", allowed)
    expected_1 = table.energy[1, w4, :].min() + table.energy[2].min()
    assert got[1] == pytest.approx(expected_1, rel=1e-14)
    assert got[0] == pytest.approx(table.energy[0].min() + expected_1, rel=1e-14)


def test_allowed_rejects_empty_and_malformed_sets():
    table = hw_sim.CostTable(TINY, "bismo-edge")
    with pytest.raises(ValueError, match="no bit widths for layer"):
        table.min_layer_cost("latency", [([], None), None, None])
    with pytest.raises(ValueError, match="one per layer"):
        table.min_layer_cost("latency", [None, None])
    with pytest.raises(ValueError, match="shape"):
        table.min_layer_cost("latency", np.ones((3, 2, 2), bool))
    with pytest.raises(ValueError, match="allowed\\[0\\]\\[0\\]"):
        table.min_layer_cost("latency", [([9], None), None, None])


def test_metric_table_names_the_cost_fields_every_layer_uses():
    # hw_sim.metrics is the one map metric -> (cost field, unit, fraction field); the result types
    # that carry those fields must agree with it, in its order
    assert hw_sim.METRICS == ("latency", "energy", "size")
    assert hw_sim.PolicyCost._fields == tuple(m.cost_field for m in hw_sim.METRIC_INFO.values())
    assert hw_sim.UNITS == {"latency": "s", "energy": "J", "size": "B"}
    assert hw_sim.metric_info("size").fraction_field == "size_fraction"
    with pytest.raises(ValueError, match="budget_metric='bops' is not allowed; expected one of"):
        hw_sim.metric_info("bops", "budget_metric")
    with pytest.raises(TypeError):
        hw_sim.METRIC_INFO["bops"] = hw_sim.METRIC_INFO["size"]  # read-only
    table = hw_sim.CostTable(TINY, "bismo-edge", bits=[4, 8])
    row = table.rows()[0]
    assert list(row)[4:7] == ["latency_s", "energy_j", "size_bytes"]
    assert row["energy_j"] == table.energy[0, 0, 0]
    total = table.policy_costs([4, 8, 4], [8, 8, 4])
    for m, info in hw_sim.METRIC_INFO.items():
        assert getattr(total, info.cost_field) == pytest.approx(table.policy_cost([4, 8, 4], [8, 8, 4], m), rel=1e-12)
