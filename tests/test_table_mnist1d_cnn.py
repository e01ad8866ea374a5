"""The exhaustive 8-layer table ``mnist1d-cnn-w4``: entries re-evaluated live at both fidelities,
its instances' optima by brute force, and its environment.

Expected values come from the live problem (``tables.live.live_problem``: the table's shipped float
network with the recorded retraining settings), which must give the table's validation and test
accuracy for sampled policies (exact with the table's numerics, within ``CROSS_CPU_SAMPLES``
elsewhere), at the default fidelity (10 retraining steps) and at 0 steps, where the generator
scored policies by the prefix walk. Optima and feasible counts are checked against a brute-force
enumeration written here, not against stored numbers.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from table_checks import (
    PROVENANCE_KEYS,
    accuracy_tolerance,
    checked_env,
    live_problem,
    numerics,
    sample_matches,
)

from quant_envs.mixed_precision.tables.fidelity import at_fidelity, fidelities
from quant_envs.mixed_precision.tables.registry import load_table

pytestmark = pytest.mark.numerics

NAME = "mnist1d-cnn-w4"


@pytest.fixture(scope="module")
def table():
    return load_table(NAME)


@pytest.fixture(scope="module")
def grid() -> np.ndarray:
    return np.array(list(itertools.product(range(4), repeat=8)))  # row-major, as the table's flat order


def test_table_is_complete_with_its_provenance(table) -> None:
    from quant_envs.mixed_precision.tasks import MNIST1D_FINETUNE

    assert table.bits == (2, 3, 4, 8) and table.num_units == 8
    assert table.score.shape == (4,) * 8
    for key in PROVENANCE_KEYS:
        assert key in table.meta, key
    assert table.meta["task"] == "mnist1d-cnn" and table.meta["eval_seed"] == 0
    held = fidelities(table)
    assert sorted(held) == [0, MNIST1D_FINETUNE["steps"]]  # post-training and the live env's default
    assert table.meta["finetune_steps"] == MNIST1D_FINETUNE["steps"]
    for steps, f in held.items():
        view = at_fidelity(table, steps)
        assert view.score.shape == view.columns["test_accuracy"].shape == (4,) * 8
        assert np.all((view.score >= 0) & (view.score <= 1)), steps
        assert f["eval_cpu_s"] > 0
        assert view.score[(3,) * 8] > view.score[(0,) * 8]  # all-8-bit beats all-2-bit
    # retraining helps: 10 steps beat 0 steps on average over the grid
    assert at_fidelity(table, 10).score.mean() > at_fidelity(table, 0).score.mean()
    assert held[0]["eval_cpu_s"] < held[10]["eval_cpu_s"]


@pytest.mark.parametrize("steps", [10, 0])
def test_a_sample_of_entries_reevaluated_live(table, steps: int) -> None:
    view = at_fidelity(table, steps)
    sample_matches(view, live_problem(view), count=2, seed=steps)


def test_the_generators_zero_step_path_reproduces_a_block_of_the_table(table, grid) -> None:
    # 16 policies sharing their first six widths: the prefix walk the generator used
    view = at_fidelity(table, 0)
    live = live_problem(view)
    rows = grid[-16:]  # the last block: widest first six layers
    policies = [tuple((table.bits[k], table.bits[k]) for k in row) for row in rows]
    records = live.evaluate_splits(policies, ("val", "test"), finetune_steps=0)
    tol = {s: accuracy_tolerance(view, len(getattr(live.task, f"{s}_set"))) for s in ("val", "test")}
    for row, rec in zip(rows, records):
        assert rec["val"].accuracy == pytest.approx(float(view.score[tuple(row)]), abs=tol["val"]), numerics(view)
        assert rec["test"].accuracy == pytest.approx(float(view.columns["test_accuracy"][tuple(row)]),
                                                     abs=tol["test"]), numerics(view)


@pytest.mark.slow
def test_a_larger_sample_of_entries_reevaluated_live(table) -> None:
    for steps in (10, 0):
        view = at_fidelity(table, steps)
        sample_matches(view, live_problem(view), count=20, seed=100 + steps)


def test_every_instance_has_its_brute_force_optimum(table, grid) -> None:
    from quant_envs.mixed_precision.tables.problem import TableProblem
    from quant_envs.mixed_precision.tables.scenarios import LEVELS, instances

    grid_instances = instances(table)
    assert len({i["hardware"] for i in grid_instances}) >= 5
    assert len(grid_instances) >= 5 * 3 * len(LEVELS)
    units = np.arange(table.num_units)
    for steps in (10, 0):
        scores = at_fidelity(table, steps).score.reshape(-1)
        for kw in grid_instances[::4] + [grid_instances[-1]]:  # a spread of hardware, metrics and levels
            problem = TableProblem(NAME, fidelity=steps, **kw)
            cost = table.costs[kw["hardware"]][kw["budget_metric"]][units, grid].sum(axis=1)
            feasible = cost <= problem.limit
            assert problem.optimum.num_feasible == int(feasible.sum()) > 0, kw
            assert problem.optimum.score == scores[feasible].max(), kw


@pytest.mark.parametrize("fidelity", [None, 0])
def test_table_env_passes_the_env_checkers(fidelity) -> None:
    import gymnasium as gym

    info = checked_env(gym.make("quant_envs/MixedPrecisionTable-v0", table=NAME, fidelity=fidelity), seed=5)
    held = fidelities(load_table(NAME))
    assert info["eval_cost_cpu_s"] == held[10 if fidelity is None else fidelity]["eval_cpu_s"]
