"""The Pareto track's swept front (budgeted optima over a grid of budgets, where a table's grid is
too large to enumerate), checked against the exact, enumerated front on grids small enough for both.

Expected values come from enumeration: every policy's normalised (score, cost) and the exact
non-dominated set, computed independently of the integer programs that sweep the budgets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from baselines.mixed_precision import pareto
from baselines.mixed_precision.pareto import pareto_instance, pareto_run
from quant_envs.mixed_precision.tables.registry import load_table
from quant_envs.mixed_precision.tables.surrogate import SurrogateTable


def reduced_mbnet() -> object:
    """The shipped 12-layer pairwise surrogate on widths {2, 4, 8}: 3^12 = 531,441 policies."""
    t = load_table("mnist1d-mbnet-s")
    keep = [t.bits.index(b) for b in (2, 4, 8)]
    m = t.model
    assert m is not None and m.kind == "pairwise"
    model = dataclasses.replace(m, bits=(2, 4, 8), unary=m.unary[:, keep], pair_terms=m.pair_terms[:, keep][:, :, keep])
    assert isinstance(model, SurrogateTable)
    costs = {hw: {k: v[:, keep] for k, v in per.items()} for hw, per in t.costs.items()}
    return dataclasses.replace(t, name="mbnet-s-248", bits=(2, 4, 8), costs=costs, model=model)


@pytest.fixture(scope="module", params=["pairwise", "separable"])
def both(request):  # (swept instance, exact instance) of one table
    if request.param == "pairwise":
        table, hw, metric = reduced_mbnet(), "bismo-edge", "latency"
    else:
        table, hw, metric = load_table("hawq-resnet18"), "t4", "latency"
    return pareto_instance(table, hw, metric, enumerate_limit=0), pareto_instance(table, hw, metric)


def test_swept_front_points_lie_on_the_exact_front(both) -> None:
    swept, exact = both
    assert not swept.exact and exact.exact and swept.score is None
    assert swept.score_range == pytest.approx(exact.score_range, abs=1e-12)
    assert swept.cost_range == exact.cost_range
    s, c = swept.objectives(swept.front)
    assert len(swept.front) >= 2 and np.all(np.diff(c) > 0) and np.all(np.diff(s) > 0)
    exact_points = set(zip(np.round(exact.score[exact.front], 12), np.round(exact.cost[exact.front], 12)))
    assert set(zip(np.round(s, 12), np.round(c, 12))) <= exact_points
    # the swept front's hypervolume brackets the exact one from below, its upper bound from above
    assert swept.front_hv <= exact.front_hv + 1e-12 <= swept.front_hv_upper + 2e-12
    assert exact.front_hv_upper == exact.front_hv


def test_objectives_off_the_enumerated_arrays_match_them(both) -> None:
    swept, exact = both
    flat = np.random.default_rng(0).integers(0, exact.num_policies, 500)
    s, c = swept.objectives(flat)
    np.testing.assert_allclose(s, exact.score[flat], atol=1e-12)
    np.testing.assert_allclose(c, exact.cost[flat], atol=1e-12)
    # HV regret of the whole grid against the swept front: negative by at most the bound's gap
    assert -(swept.front_hv_upper - swept.front_hv) - 1e-12 <= swept.hv_regret(exact.front, [len(exact.front)])[
        len(exact.front)] <= 1e-12


@pytest.mark.parametrize("method", ["random", "nsga2"])
def test_entrants_on_a_swept_instance_evaluate_distinct_policies(both, method: str) -> None:
    swept, _ = both
    a = pareto_run(swept, method, 3, 150)
    assert len(a) == len(set(a)) == 150 and a == pareto_run(swept, method, 3, 150)
    assert all(0 <= j < swept.num_policies for j in a)
    r = swept.hv_regret(a, [10, 150])
    assert r[150] <= r[10] <= swept.front_hv


def test_the_cache_is_reused_only_for_the_table_and_costs_it_was_solved_for(tmp_path, monkeypatch) -> None:
    table = load_table("hawq-resnet18")
    path = tmp_path / "front.json"
    first = pareto_instance(table, "t4", "size", path, enumerate_limit=0)
    assert path.exists()

    def unsolvable(*args, **kwargs):
        raise AssertionError("solved again although the cache holds this front")

    monkeypatch.setattr(pareto, "_budgeted_best", unsolvable)
    again = pareto_instance(table, "t4", "size", path, enumerate_limit=0)
    assert again.front.tolist() == first.front.tolist() and again.front_hv == first.front_hv
    with pytest.raises(AssertionError, match="solved again"):  # other costs: the file does not apply
        pareto_instance(table, "t4", "latency", path, enumerate_limit=0)


def test_has_front_names_the_tables_a_front_can_be_found_for() -> None:
    from baselines.mixed_precision.pareto import has_front

    # enumerable, separable (integer program) and pairwise (integer program): a front either way
    assert has_front(load_table("mnist1d-cnn-s")) and has_front(load_table("hawq-resnet50"))
    assert has_front(load_table("mnist1d-mbnet-s"), enumerate_limit=0)
    # a grid surrogate beyond the enumeration limit: no integer program takes it
    assert not has_front(load_table("mnist1d-cnn-s"), enumerate_limit=0)
