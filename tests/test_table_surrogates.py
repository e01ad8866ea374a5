"""The surrogate scenarios (``mnist1d-cnn-s``: 8 layers x 7 widths; ``mnist1d-mbnet-s``: 12 layers
x 7 widths): their shipped training sets re-evaluated live, their fidelity recomputed from the
shipped held-out evaluations, their optima checked by an independent solver, their environments.

Expected values come from the shipped live training set (``tables.sample``'s validation and test
accuracy of each policy, which a live retraining from the table's float network must repeat:
exactly with the recorded numerics, within ``CROSS_CPU_SAMPLES`` elsewhere), from
``tables.surrogate.fidelity`` recomputed on the held-out part, and from
``tables.surrogate_optimum`` (chunked enumeration, or HiGHS on the pairwise program), not from
stored numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from table_checks import PROVENANCE_KEYS, checked_env, live_problem, sample_matches

from quant_envs.mixed_precision.tables.registry import load_table
from quant_envs.mixed_precision.tables.surrogate import fidelity
from quant_envs.mixed_precision.tables.training_data import training_samples

pytestmark = pytest.mark.numerics

#: (name, layers, model kind) of every surrogate scenario.
SCENARIOS = [("mnist1d-cnn-s", 8, "grid"), ("mnist1d-mbnet-s", 12, "pairwise")]


@pytest.mark.parametrize(("name", "layers", "kind"), SCENARIOS)
def test_scenario_carries_its_model_data_and_provenance(name: str, layers: int, kind: str) -> None:
    t = load_table(name)
    assert t.bits == (2, 3, 4, 5, 6, 7, 8) and t.num_units == layers
    assert t.model is not None and t.model.kind == kind and t.score.size == 0
    for key in PROVENANCE_KEYS:
        assert key in t.meta, key
    s = training_samples(t)  # checks the shipped file against meta["samples_sha256"]
    held = s["held_out"].astype(bool)
    assert (~held).sum() >= 20_000 and held.sum() >= 2_000  # the sizes
    assert set(np.unique(s["kind"]).tolist()) == {0, 1}  # random feasible and search-trajectory policies
    # the fidelity recorded at fitting time is the one the shipped model has on the held-out evaluations
    fid = fidelity(s["val_accuracy"][held], t.scores(s["idx"][held].astype(int)))
    assert fid["kendall_tau"] == pytest.approx(t.meta["surrogate"]["fidelity"]["kendall_tau"], abs=1e-9)
    assert fid["top_decile_rmse"] == pytest.approx(t.meta["surrogate"]["fidelity"]["top_decile_rmse"], abs=1e-4)
    assert fid["kendall_tau"] >= 0.85 and fid["top_decile_rmse"] <= 0.42  # the targets
    # the float network is the one every training policy was retrained from
    assert t.meta["float_sha256"] == t.meta["surrogate"]["source"]["float_sha256"]


@pytest.mark.parametrize(("name", "layers", "kind"), SCENARIOS)
def test_training_set_reevaluated_live(name: str, layers: int, kind: str) -> None:
    t = load_table(name)
    sample_matches(t, live_problem(t), count=2, seed=1)


def check_shipped_optima(name: str, kind: str, every: int) -> None:
    """Every ``every``-th shipped optimum (``meta["optima"]``) is the one an independent solver finds
    for the model (chunked enumeration, or HiGHS on the pairwise program), best and worst, and is the
    one the environment's problem uses."""
    from quant_envs.mixed_precision.tables.problem import TableProblem
    from quant_envs.mixed_precision.tables.reference import cost_digest
    from quant_envs.mixed_precision.tables.scenarios import instances
    from quant_envs.mixed_precision.tables.surrogate_optimum import enumerate_optimum, milp_optimum

    t = load_table(name)
    assert t.model is not None and t.meta["optima_digest"] == t.digest
    grid = instances(t)
    assert len(grid) >= 5 * 3 * 3 and len(t.meta["optima"]) == len(grid)
    solver = enumerate_optimum if kind == "grid" else milp_optimum
    for entry in t.meta["optima"][::every]:
        inst = {k: entry[k] for k in ("hardware", "budget_metric", "budget_level")}
        p = TableProblem(t, **inst)
        assert entry["cost_digest"] == cost_digest(p.unit_cost, p.budget), inst
        best, worst = solver(t.model, p.unit_cost, p.budget), solver(t.model.negated(), p.unit_cost, p.budget)
        assert entry["score"] == pytest.approx(best.score, abs=1e-9), inst
        assert entry["worst_score"] == pytest.approx(float(t.scores(worst.index)), abs=1e-9), inst
        assert p.optimum.score == entry["score"] and p.optimum.index.tolist() == entry["index"], inst


@pytest.mark.parametrize(("name", "layers", "kind"), SCENARIOS)
def test_shipped_optima_are_the_solved_ones(name: str, layers: int, kind: str) -> None:
    check_shipped_optima(name, kind, every=22)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "layers", "kind"), SCENARIOS)
def test_every_shipped_optimum_is_the_solved_one(name: str, layers: int, kind: str) -> None:
    check_shipped_optima(name, kind, every=1)


@pytest.mark.parametrize(("name", "layers", "kind"), SCENARIOS)
def test_surrogate_env_passes_the_env_checkers(name: str, layers: int, kind: str) -> None:
    import gymnasium as gym

    info = checked_env(gym.make("quant_envs/MixedPrecisionTable-v0", table=name), seed=3)
    t = load_table(name)
    assert info["table_digest"] == t.digest and info["eval_cost_cpu_s"] == t.meta["eval_cpu_s"] > 0


def test_the_12_layer_integer_program_equals_enumeration_on_a_reduced_grid() -> None:
    # the shipped pairwise model restricted to widths {2, 4, 8} (3^12 = 531,441 policies, enumerable):
    # HiGHS's certified optimum must be the enumerated one at every level
    from quant_envs.mixed_precision.tables.scenarios import LEVELS
    from quant_envs.mixed_precision.tables.surrogate import SurrogateTable
    from quant_envs.mixed_precision.tables.surrogate_optimum import enumerate_optimum, milp_optimum

    t = load_table("mnist1d-mbnet-s")
    keep = [t.bits.index(b) for b in (2, 4, 8)]
    m = t.model
    assert m is not None and m.kind == "pairwise"
    reduced = SurrogateTable(name="reduced", bits=(2, 4, 8), num_units=m.num_units, kind="pairwise",
                             intercept=m.intercept, unary=m.unary[:, keep], pairs=m.pairs,
                             pair_terms=m.pair_terms[:, keep][:, :, keep])
    cost = t.costs[t.default_hardware][t.default_budget["metric"]][:, keep]
    lo, hi = cost.min(axis=1).sum(), cost.max(axis=1).sum()
    for level in LEVELS:
        budget = lo + level * (hi - lo)
        by_milp, by_enum = milp_optimum(reduced, cost, budget), enumerate_optimum(reduced, cost, budget)
        assert by_milp.score == pytest.approx(by_enum.score, abs=1e-9), level
