"""The exhaustive mnist1d-small table: its entries re-evaluated live, its optimum, and its environment.

Expected values come from the live environment: ``MixedPrecisionProblem`` retrains a sample of the
table's policies with the table's recorded settings (the task's own finetune steps, retraining seed,
task seed) and must give the same validation and test accuracy. The optimum and the feasible count
at the default budget are checked against a brute-force enumeration of the shipped table written
here (every policy's cost summed from the per-layer cost table), not against stored numbers.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from table_checks import PROVENANCE_KEYS, checked_env, live_problem, same_episodes, sample_matches

from quant_envs.mixed_precision.tables.registry import load_table

# compared with data made on the tables' CPU kind: exact there, within CROSS_CPU_SAMPLES elsewhere
pytestmark = pytest.mark.numerics


@pytest.fixture(scope="module")
def table():
    return load_table("mnist1d-small")


@pytest.fixture(scope="module")
def live(table):
    return live_problem(table)


def test_table_is_complete_with_its_provenance(table) -> None:
    from quant_envs.mixed_precision.tasks import MNIST1D_FINETUNE

    assert table.bits == (2, 3, 4, 8) and table.num_units == 5
    assert table.score.shape == (4,) * 5 and table.columns["test_accuracy"].shape == (4,) * 5
    for key in PROVENANCE_KEYS:
        assert key in table.meta, key
    # the live environment's retraining recipe: the task's own finetune steps, retraining seed 0
    assert table.meta["task"] == "mnist1d-small" and table.meta["finetune_steps"] == MNIST1D_FINETUNE["steps"]
    assert table.meta["eval_seed"] == 0
    assert table.meta["float_accuracy_test"] >= 0.97  # the task's acceptance bar
    assert np.all((table.score >= 0) & (table.score <= 1))
    assert table.score[(3,) * 5] > table.score[(0,) * 5]  # all-8-bit beats all-2-bit


def test_a_sample_of_entries_reevaluated_live(table, live) -> None:
    sample_matches(table, live, count=2, seed=0)


@pytest.mark.slow
def test_a_larger_sample_of_entries_reevaluated_live(table, live) -> None:
    sample_matches(table, live, count=30, seed=1)


def test_default_budget_optimum_by_brute_force(table) -> None:
    from quant_envs.mixed_precision.tables.problem import TableProblem

    problem = TableProblem(table="mnist1d-small")
    # the default: bismo-edge latency at 0.25 of all-8-bit, as MixedPrecision-v0's default budget
    assert (problem.hardware, problem.budget_metric) == ("bismo-edge", "latency")
    cost = table.costs["bismo-edge"]["latency"]
    assert problem.budget == pytest.approx(0.25 * cost[:, -1].sum(), rel=1e-12)
    best, best_idx, feasible = -np.inf, None, 0
    for idx in itertools.product(range(len(table.bits)), repeat=table.num_units):
        if cost[np.arange(table.num_units), idx].sum() <= problem.limit:
            feasible += 1
            s = float(table.score[idx])
            if s > best:
                best, best_idx = s, idx
    assert feasible >= 100  # a non-degenerate search space at the default budget
    assert problem.optimum.num_feasible == feasible
    assert problem.optimum.score == best
    assert tuple(problem.optimum.index) == best_idx or float(table.score[tuple(problem.optimum.index)]) == best


def test_table_env_passes_the_env_checkers() -> None:
    import gymnasium as gym

    # same seed, same episode; a finished episode reports its regret against the exact optimum
    checked_env(gym.make("quant_envs/MixedPrecisionTable-v0", table="mnist1d-small"), seed=3)


def test_table_env_sees_what_mixed_precision_v0_sees(live) -> None:
    from quant_envs.mixed_precision.env import MixedPrecisionEnv
    from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv

    kw = {"hardware": "bismo-edge", "budget_metric": "latency", "budget_fraction": 0.25}  # both defaults
    env_t = MixedPrecisionTableEnv(table="mnist1d-small")  # the table's default budget, stated above
    env_l = MixedPrecisionEnv(task=live.task, bits=live.bits, finetune_steps=live.finetune_steps,
                              eval_seed=live.eval_seed, share_problem=False, **kw)
    same_episodes(env_t, env_l, episodes=2)
