"""MixedPrecisionTable-v0: exact masks, rewards and regret from the table, budgets, the table format.

Expected values come from brute force over the table (every policy's cost and score enumerated
here, independently of the environment's mask and reference code) and from the HAWQ-V3 notebook's
arrays (``table_data/hawq_v3_ilp.json``).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import quant_envs  # noqa: F401
from baselines.mixed_precision import solve
from quant_envs.mixed_precision.problem import RELATIVE_SLACK
from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv
from quant_envs.mixed_precision.tables.npz import load_npz, save_table
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.registry import load_table, register_table

ENV_ID = "quant_envs/MixedPrecisionTable-v0"


def brute_force(problem: TableProblem) -> tuple[np.ndarray, np.ndarray]:
    """Every policy's budget-metric cost and score, [bits] * units, from an explicit list of all
    policies (not the reference module's broadcast sums)."""
    t = problem.table
    nb, n = len(t.bits), t.num_units
    idx = np.indices((nb,) * n).reshape(n, -1).T  # row-major order, as itertools.product
    units = np.arange(n)
    cost = problem.unit_cost[units, idx].sum(axis=1).reshape((nb,) * n)
    score = t.score[units, idx].sum(axis=1).reshape((nb,) * n)
    return cost, score


@pytest.fixture(scope="module")
def r18() -> tuple[TableProblem, np.ndarray, np.ndarray]:
    p = TableProblem("hawq-resnet18", budget_metric="latency", budget_level=0.3)
    cost, score = brute_force(p)
    return p, cost, score


def test_mask_is_exact_against_brute_force(r18) -> None:
    p, cost, _ = r18
    env = MixedPrecisionTableEnv(table="hawq-resnet18", budget_metric="latency", budget_level=0.3)
    limit = p.budget * (1 + RELATIVE_SLACK)
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(30):
        env.reset()
        prefix: list[int] = []
        for _t in range(env.num_steps):
            mask = env.action_masks()
            for b in range(len(env.bits)):  # allowed iff some completion of prefix + b fits
                assert mask[b] == bool(cost[tuple(prefix + [b])].min() <= limit)
                checked += 1
            a = int(rng.choice(np.flatnonzero(mask)))
            prefix.append(a)
            _, _, done, _, info = env.step(a)
        assert done and info["budget_used"] <= 1 + 1e-9
    assert checked == 30 * 16 * 2


def test_optimum_and_regret_against_brute_force(r18) -> None:
    p, cost, score = r18
    feasible = cost <= p.budget * (1 + RELATIVE_SLACK)
    assert p.optimum.score == pytest.approx(score[feasible].max(), abs=1e-12)
    assert p.optimum.worst_score == pytest.approx(score[feasible].min(), abs=1e-12)
    assert p.optimum.num_feasible == int(feasible.sum())
    env = MixedPrecisionTableEnv(table="hawq-resnet18", budget_metric="latency", budget_level=0.3)
    rng = np.random.default_rng(1)
    for _ in range(20):
        env.reset()
        done, ret = False, 0.0
        while not done:
            _, r, done, _, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
            ret += r
        idx = tuple(env.bits.index(w) for w, _ in info["policy"])
        assert info["accuracy"] == pytest.approx(score[idx], abs=1e-12)
        assert ret == pytest.approx(score[idx], abs=1e-12)  # reward = minus HAWQ's perturbation
        assert info["regret"] == pytest.approx(p.optimum.score - score[idx], abs=1e-12)
        assert info["regret"] >= 0
    env.reset()
    for k in p.optimum.index:  # the optimum replays to zero regret
        _, _, done, _, info = env.step(int(k))
    assert done and info["regret"] == pytest.approx(0.0, abs=1e-12)


def test_costs_in_si_units_from_the_notebook() -> None:
    from quant_envs.mixed_precision.tables.hawq import hawq_data

    d = hawq_data()["networks"]["resnet18"]
    p = TableProblem("hawq-resnet18")
    all8 = np.ones(p.num_layers, dtype=int)
    costs = p.costs_of(all8)
    assert costs["latency"] == pytest.approx(sum(d["t4_latency_int8_ms"]) * 1e-3, rel=1e-12)
    assert costs["size"] == pytest.approx(sum(d["parameters"]), rel=1e-12)  # 8 bits = 1 byte per weight
    assert costs["bops"] == pytest.approx(64 * sum(d["macs"]), rel=1e-12)


def test_budget_arguments() -> None:
    lo = TableProblem("hawq-resnet18", budget_metric="size", budget_level=0.0)
    hi = TableProblem("hawq-resnet18", budget_metric="size", budget_level=1.0)
    half = TableProblem("hawq-resnet18", budget_metric="size", budget_fraction=0.75)
    # all-4-bit weights are half the all-8-bit bytes, so level 0.5 is fraction 0.75
    assert lo.budget == pytest.approx(hi.budget / 2)
    assert half.budget == pytest.approx(TableProblem("hawq-resnet18", budget_metric="size", budget_level=0.5).budget)
    assert TableProblem("hawq-resnet18", budget_metric="size", budget=1e7).budget == 1e7
    with pytest.raises(ValueError, match="at most one"):
        TableProblem("hawq-resnet18", budget_level=0.5, budget_fraction=0.5)
    with pytest.raises(ValueError, match="budget_fraction=0.1"):
        TableProblem("hawq-resnet18", budget_fraction=0.1)
    with pytest.raises(ValueError, match="hardware='bismo-edge'"):
        TableProblem("hawq-resnet18", hardware="bismo-edge")
    with pytest.raises(ValueError, match="table='nope'"):
        gym.make(ENV_ID, table="nope")
    with pytest.raises(TypeError, match="budget_level"):
        TableProblem("hawq-resnet18", budget_level="0.5")


def test_invalid_actions() -> None:
    env = MixedPrecisionTableEnv(table="hawq-resnet18", budget_level=0.0, invalid_action="raise")
    env.reset()
    with pytest.raises(ValueError, match="masked"):
        env.step(1)  # level 0: only 4 bits fit
    env = MixedPrecisionTableEnv(table="hawq-resnet18", budget_level=0.0)
    env.reset()
    _, _, _, _, info = env.step(1)
    assert info["projected_from"] == 1 and env.policy[0] == (4, 4)
    with pytest.raises(ValueError, match="action=2"):
        env.step(2)


@pytest.mark.parametrize("method", ["random", "evolution", "greedy_std", "greedy_sensitivity", "uniform"])
def test_baselines_solve_the_table_env(method: str) -> None:
    env = gym.make(ENV_ID, table="hawq-resnet50", budget_metric="bops", budget_level=0.5)
    result = solve(env, method, max_evaluations=60, seed=0)
    p = env.unwrapped.problem
    assert result.evaluation.budget_used <= 1 + 1e-9
    assert len(result.history) <= 60
    assert p.regret(result.accuracy) >= -1e-12  # never better than the exact optimum


def test_the_network_is_refused_but_hawq_v3_runs_from_the_table() -> None:
    """A table holds no network: asking for it is a clear error. HAWQ-V3 runs on a table all the same,
    from the table's own objective (HAWQ-V3's published tables) in one evaluation."""
    env = gym.make(ENV_ID)
    with pytest.raises(ValueError, match="holds no network"):
        env.unwrapped.problem.task  # noqa: B018  (the property raises)
    result = solve(env, "hawq_v3", max_evaluations=5)
    problem = env.unwrapped.problem
    # the table's exact optimum: on HAWQ-V3's tables the ILP's objective is the table itself
    assert len(result.history) == 1 and problem.regret(result.accuracy) == pytest.approx(0.0, abs=1e-9)


def test_table_npz_round_trip(tmp_path) -> None:
    t = load_table("hawq-resnet50")
    path = save_table(t, tmp_path / "t.npz")
    u = load_npz(path)
    assert (u.name, u.bits, u.units, u.layers) == (t.name, t.bits, t.units, t.layers)
    # loading adds where the costs (no hw_sim shapes here: shipped) and the file came from, nothing else
    assert u.meta == {**t.meta, "costs_source": "shipped (hw_sim at generation)", "source_file": str(path.resolve())}
    again = load_npz(save_table(u, tmp_path / "u.npz"))  # saving drops what loading added
    assert again.meta == {**u.meta, "source_file": str((tmp_path / "u.npz").resolve())}
    np.testing.assert_array_equal(u.score, t.score)
    np.testing.assert_array_equal(u.costs["t4"]["bops"], t.costs["t4"]["bops"])
    register_table("copy-of-r50", path)
    env = gym.make(ENV_ID, table="copy-of-r50", budget_level=0.25).unwrapped
    assert env.problem.optimum.score == TableProblem("hawq-resnet50", budget_level=0.25).optimum.score


def test_render_ansi() -> None:
    env = MixedPrecisionTableEnv(render_mode="ansi")
    env.reset()
    for k in env.problem.optimum.index:
        env.step(int(k))
    text = env.render()
    assert "regret 0" in text and "stage2.unit1.quant_convbn1+stage2.unit1.quant_identity_convbn" in text
