"""The table environment's variants: HAQ's continuous action (``MixedPrecisionTableContinuous-v0``)
and the budget drawn per episode (``budget_range``), against the discrete, fixed-budget ids."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import quant_envs  # noqa: F401  (registers the ids)
from agents.validate import validate
from quant_envs.mixed_precision.actions import choose_continuous_width, continuous_action_for
from quant_envs.mixed_precision.features import NUM_FEATURES
from quant_envs.mixed_precision.tables.problem import TableProblem

TABLE = "quant_envs/MixedPrecisionTable-v0"
CONTINUOUS = "quant_envs/MixedPrecisionTableContinuous-v0"
DIGITS = {"table": "digits-cnn", "hardware": "bismo-edge", "budget_metric": "latency"}


# ------------------------------------------------------------------------------ continuous action


def test_continuous_rule_and_its_inverse_on_every_mask() -> None:
    # every non-empty mask over 4 widths: the middle of each allowed width's interval selects it, and
    # the intervals are equal, ascending and cover [0, 1] (HAQ's rounding onto the allowed widths)
    for bits in range(1, 16):
        mask = np.array([(bits >> k) & 1 for k in range(4)], dtype=bool)
        allowed = np.flatnonzero(mask)
        for j in allowed:
            assert choose_continuous_width(continuous_action_for(int(j), mask), mask) == j
        picks = [choose_continuous_width(np.array([u], dtype=np.float32), mask) for u in np.linspace(0, 1, 401)]
        assert picks == sorted(picks) and set(picks) == set(allowed.tolist())
        with pytest.raises(ValueError, match="not allowed by the mask"):
            continuous_action_for(int(np.flatnonzero(~mask)[0]) if (~mask).any() else 9, mask)


def test_continuous_table_env_replays_the_discrete_episodes() -> None:
    # the same widths through both ids give equal observations, rewards and info (mask, score, regret)
    rng = np.random.default_rng(0)
    disc, cont = gym.make(TABLE, **DIGITS).unwrapped, gym.make(CONTINUOUS, **DIGITS).unwrapped
    assert isinstance(cont.action_space, gym.spaces.Box) and cont.action_space.shape == (1,)
    for seed in range(20):
        disc.reset(seed=seed)
        cont.reset(seed=seed)
        done = False
        while not done:
            mask = disc.action_masks()
            np.testing.assert_array_equal(mask, cont.action_masks())
            j = int(rng.choice(np.flatnonzero(mask)))
            a, b = disc.step(j), cont.step(continuous_action_for(j, mask))
            np.testing.assert_array_equal(a[0], b[0])
            assert a[1:4] == b[1:4]
            assert a[4].keys() == b[4].keys() and all(np.array_equal(a[4][k], b[4][k]) for k in a[4])
            done = a[2]
        assert a[4]["budget_used"] <= 1 + 1e-9 and a[4]["regret"] >= 0


def test_continuous_table_env_refuses_what_it_does_not_take() -> None:
    with pytest.raises(TypeError, match="invalid_action"):
        gym.make(CONTINUOUS, invalid_action="raise")
    env = gym.make(CONTINUOUS, **DIGITS).unwrapped
    env.reset(seed=0)
    for bad in ("0.5", np.array([0.1, 0.2]), np.array([np.nan])):
        with pytest.raises(ValueError, match="one finite number in"):
            env.step(bad)
    # out of [0, 1]: clipped (SB3's DDPG may overshoot), i.e. the narrowest / widest allowed width
    env.step(np.array([-3.0]))
    assert env.policy[0][0] == min(np.array(env.bits)[TableProblem(**DIGITS).step_mask(0, 0.0)])


def test_a_continuous_table_policy_file_replays() -> None:
    env = gym.make(CONTINUOUS, **DIGITS).unwrapped
    env.reset(seed=0)
    info = {}
    for _ in range(env.num_steps):
        _, _, _, _, info = env.step(np.array([0.9], dtype=np.float32))
    claim = {"env_id": CONTINUOUS, "env_kwargs": DIGITS, "policy": info["policy"], "accuracy": info["accuracy"],
             "regret": info["regret"]}
    report = validate(claim)
    assert report.ok, report.format()
    assert not validate({**claim, "regret": info["regret"] + 1.0}).ok


# ---------------------------------------------------------------------------------- budget_range


def test_default_episodes_draw_nothing_and_keep_their_space() -> None:
    # off by default: reset does not touch the generator, so a default id's episodes are as before
    # (tests/test_version_contract.py checks every id's recorded rollout)
    for env_id in (TABLE, CONTINUOUS):
        env = gym.make(env_id, table="digits-cnn").unwrapped
        env.reset(seed=7)
        assert env.observation_space.shape == (NUM_FEATURES,) and env.budget_levels is None
        assert env.np_random.bit_generator.state == np.random.default_rng(7).bit_generator.state
        _, info = env.reset()
        assert "budget_level" not in info


def test_budget_is_drawn_per_episode_seeded_and_shown() -> None:
    env = gym.make(TABLE, **DIGITS, budget_range=(0.1, 0.9), budget_grid=9).unwrapped
    assert env.observation_space.shape == (NUM_FEATURES + 1,)
    levels = np.linspace(0.1, 0.9, 9)
    drawn = []
    for seed in range(30):
        obs, info = env.reset(seed=seed)
        level = info["budget_level"]
        assert level in levels and obs[-1] == np.float32(level) and env.observation_space.contains(obs)
        assert env.problem.budget == TableProblem(**DIGITS, budget_level=level).budget
        drawn.append(level)
    assert len(set(drawn)) >= 5  # 30 draws over 9 levels
    again = [gym.make(TABLE, **DIGITS, budget_range=(0.1, 0.9), budget_grid=9).unwrapped.reset(seed=s)[1]["budget_level"]
             for s in range(30)]
    assert again == drawn  # seeded by reset's seed
    env.reset(seed=0)
    assert len({env.reset()[1]["budget_level"] for _ in range(30)}) >= 5  # unseeded resets go on drawing


def test_masks_follow_the_drawn_budget_and_no_policy_is_infeasible() -> None:
    env = gym.make(TABLE, **DIGITS, budget_range=(0.0, 1.0), budget_grid=11).unwrapped
    rng = np.random.default_rng(1)
    widest_masked = 0
    env.reset(seed=3)
    for episode in range(200):
        _, info = env.reset()
        p = TableProblem(**DIGITS, budget_level=info["budget_level"])  # the fixed-budget problem it drew
        spent, done = 0.0, False
        for unit in range(env.num_layers):
            mask = env.action_masks()
            np.testing.assert_array_equal(mask, p.step_mask(unit, spent))
            widest_masked += not mask[-1]
            # half the episodes greedy for width (the budget binds), half uniform among the allowed
            j = int(np.flatnonzero(mask)[-1]) if episode % 2 else int(rng.choice(np.flatnonzero(mask)))
            _, _, done, _, info = env.step(j)
            spent += float(p.unit_cost[unit, j])
        assert done and info["budget_used"] <= 1 + 1e-9 and info["budget"] == p.budget
        assert info["optimum_score"] == p.optimum.score and info["regret"] >= 0
        assert p.is_feasible(tuple(map(tuple, info["policy"])))
    assert widest_masked > 0  # low levels do bind


def test_cached_counts_a_policy_once_across_budgets() -> None:
    env = gym.make(TABLE, **DIGITS, budget_range=(0.5, 1.0), budget_grid=2).unwrapped
    seen, cached = set(), []
    env.reset(seed=0)
    for _ in range(40):
        _, info = env.reset()
        done = False
        while not done:  # the narrowest width everywhere: feasible at every level
            _, _, done, _, info = env.step(0)
        cached.append(info["cached"])
        seen.add(info["budget_level"])
    assert seen == {0.5, 1.0} and cached == [False] + [True] * 39


def test_budget_range_bad_input() -> None:
    with pytest.raises(ValueError, match="budget_range draws"):
        gym.make(TABLE, table="digits-cnn", budget_range=(0.1, 0.5), budget_fraction=0.4)
    with pytest.raises(ValueError, match=r"budget_range\[1\]"):
        gym.make(TABLE, table="digits-cnn", budget_range=(0.5, 0.2))
    with pytest.raises(ValueError, match=r"budget_range\[0\]"):
        gym.make(TABLE, table="digits-cnn", budget_range=(-0.1, 0.2))
    with pytest.raises(TypeError, match="budget_range"):
        gym.make(TABLE, table="digits-cnn", budget_range="01")
    with pytest.raises(ValueError, match="budget_grid"):
        gym.make(TABLE, table="digits-cnn", budget_range=(0.1, 0.5), budget_grid=1)


def test_a_policy_file_of_a_drawn_budget_replays_at_that_budget() -> None:
    kwargs = {**DIGITS, "budget_range": [0.0, 1.0]}
    env = gym.make(TABLE, **kwargs).unwrapped
    _, info = env.reset(seed=2)
    level = info["budget_level"]
    for _ in range(env.num_steps):
        _, _, _, _, info = env.step(int(np.flatnonzero(env.action_masks())[-1]))
    claim = {"env_id": TABLE, "env_kwargs": kwargs, "policy": info["policy"], "accuracy": info["accuracy"],
             "regret": info["regret"], "budget_used": info["budget_used"], "budget_level": level}
    report = validate(claim)
    assert report.ok and report.env_kwargs["budget_level"] == level, report.format()
    with pytest.raises(ValueError, match="budget_level"):
        validate({k: v for k, v in claim.items() if k != "budget_level"})
