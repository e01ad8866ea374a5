"""HAWQ-V3's tables: the shipped data against its source, and the exact optimum against the bit
configurations HAWQ-V3 publishes.

Expected values: ``table_data/hawq_v3_bit_config.json``, the weight bits HAWQ-V3 ships in
``bit_config.py`` (github.com/Zhen-Dong/HAWQ, commit 1616df69, MIT licence) for ResNet-18/50 at
model-size, BOPs and latency levels 0.25, 0.5 and 0.75; and the parameter and MAC counts of the
notebook ``ILP.ipynb`` (same commit) for the layer shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

from quant_envs.mixed_precision.tables.hawq import (
    NETWORKS,
    hawq_bit_configs,
    hawq_data,
    hawq_v3_table,
    resnet_layers,
    unit_groups,
)
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.reference import _milp

CASES = [(net, metric, level) for net in NETWORKS for metric, levels in hawq_bit_configs()["networks"][net].items()
         for level in levels]


def test_provenance_beside_the_data() -> None:
    for data in (hawq_data(), hawq_bit_configs()):
        prov = data["provenance"]
        assert prov["repository"] == "https://github.com/Zhen-Dong/HAWQ"
        assert len(prov["commit"]) == 40 and prov["license"].startswith("MIT")


@pytest.mark.parametrize("network", NETWORKS)
def test_layer_shapes_match_the_notebooks_counts(network: str) -> None:
    d = hawq_data()["networks"][network]
    layers = resnet_layers(network)
    assert [la.name for la in layers] == d["layers"]
    assert [la.num_weights for la in layers] == d["parameters"]
    out = [la.num_weights * (la.in_hw[0] // la.stride) ** 2 for la in layers]
    assert out == d["macs"]


def test_nine_published_configurations_per_network() -> None:
    assert len(CASES) == 18  # 2 networks x 3 metrics x 3 levels in bit_config.py


def _published_units(network: str, bits: list[int]) -> np.ndarray:
    d = hawq_data()["networks"][network]
    groups = unit_groups(d["layers"], d["ties"])
    for g in groups:  # HAWQ's own configurations respect its ties
        assert len({bits[i] for i in g}) == 1
    return np.array([(4, 8).index(bits[g[0]]) for g in groups])


@pytest.mark.parametrize("network,metric,level", CASES)
def test_exact_optimum_reproduces_hawq_v3_bit_config(network: str, metric: str, level: str) -> None:
    published = _published_units(network, hawq_bit_configs()["networks"][network][metric][level])
    p = TableProblem(f"hawq-{network}", budget_metric=metric, budget_level=float(level))
    ours = p.optimum.index
    pub_score = float(p.table.scores(published))
    assert p.costs_of(published)[metric] <= p.limit  # HAWQ's answer is within its budget here too
    if (network, metric, level) == ("resnet50", "size", "0.25"):
        # The one published configuration that is not the optimum of the published data: it keeps
        # stage3.unit6.quant_convbn1 (unit 36) at 4 bits although 8 bits still fit the budget, and
        # scores worse than our feasible optimum; recorded so a change shows.
        assert np.flatnonzero(ours != published).tolist() == [36]
        assert (published[36], ours[36]) == (0, 1)
        assert p.optimum.score > pub_score + 1e-3
    else:
        np.testing.assert_array_equal(ours, published)
        assert p.optimum.score == pytest.approx(pub_score, abs=1e-12)


@pytest.mark.parametrize("metric", ["latency", "size", "bops"])
@pytest.mark.parametrize("level", [0.1, 0.37, 0.8])
def test_milp_agrees_with_enumeration_on_resnet18(metric: str, level: float) -> None:
    p = TableProblem("hawq-resnet18", budget_metric=metric, budget_level=level)
    assert p.optimum.method == "enumeration"
    best = _milp(p.table.score, p.unit_cost, p.budget, maximise=True)
    worst = _milp(p.table.score, p.unit_cost, p.budget, maximise=False)
    assert float(p.table.scores(best)) == pytest.approx(p.optimum.score, abs=1e-9)
    assert float(p.table.scores(worst)) == pytest.approx(p.optimum.worst_score, abs=1e-9)


def test_score_is_minus_the_perturbation() -> None:
    # the all-8-bit policy's score is minus sum_i trace_i * ||dW_i||^2 at 8 bits (notebook arrays)
    d = hawq_data()["networks"]["resnet18"]
    t = hawq_v3_table("resnet18")
    want = -float(np.dot(d["hutchinson_trace_per_parameter"], d["delta_w_sq_8bit"]))
    assert float(t.scores(np.ones(t.num_units, dtype=int))) == pytest.approx(want, rel=1e-12)
