"""FeelAllocation-v0 and FeelTraining-v0 behaviour (check_env itself runs in test_env_api.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import quant_envs  # noqa: F401  (registers the ids)
from baselines.feel import solve
from quant_envs.feel import make_scenario, total_time
from quant_envs.feel.env import FeelAllocationEnv, FeelTrainingEnv


def test_allocation_reward_is_normalised_model_time() -> None:
    env = FeelAllocationEnv(num_devices=6, scenario_seed=3)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    sc = make_scenario(6, seed=3, total_bandwidth=200e3)
    # Reference = equal bandwidth with 8-bit levels, computed independently through total_time.
    ref = total_time(sc, np.full(6, 127), np.full(6, sc.total_bandwidth / 6))
    assert info["reference_time"] == pytest.approx(ref)
    # Action -1 for levels is s = 1; shares (a + 1) / 2 = 1/6 each fill the band exactly.
    action = np.concatenate([np.full(6, -1.0), np.full(6, 2.0 / 6.0 - 1.0)]).astype(np.float32)
    _, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated
    np.testing.assert_array_equal(info["levels"], 1)
    assert not info["projected"]
    assert reward == pytest.approx(-total_time(sc, np.ones(6, dtype=int), info["bandwidth"]) / ref)


def test_allocation_projection_keeps_bandwidth_limit() -> None:
    env = FeelAllocationEnv(num_devices=5, scenario_seed=1)
    env.reset(seed=1)
    _, reward, _, _, info = env.step(np.ones(10, dtype=np.float32))  # every share = 1: sum 5
    assert info["projected"]
    assert info["bandwidth"].sum() <= env.total_bandwidth
    np.testing.assert_allclose(info["bandwidth"], env.total_bandwidth / 5, rtol=1e-9)  # projection of a constant vector
    np.testing.assert_array_equal(info["levels"], env.max_levels)
    env.reset(seed=1)
    _, _, _, _, info = env.step(-np.ones(10, dtype=np.float32))  # every share 0: raised to min_share
    np.testing.assert_allclose(info["bandwidth"], env.min_share * env.total_bandwidth, rtol=1e-9)
    assert reward >= -env.reward_clip


def test_allocation_ao_beats_reference_and_new_scenario_per_episode() -> None:
    env = FeelAllocationEnv(num_devices=8, scenario_seed=2)
    env.reset(seed=0)
    r = solve(env.scenario, "ao")
    assert r.total_time < env.reference_time  # the optimum earns a reward above -1
    free = FeelAllocationEnv(num_devices=8)
    free.reset(seed=0)
    g0 = free.scenario.channel_gain.copy()
    free.reset()
    assert not np.array_equal(g0, free.scenario.channel_gain)
    assert "not reset" in FeelAllocationEnv(num_devices=3, render_mode="ansi").render()


def test_training_env_terminates_at_target_and_truncates() -> None:
    env = FeelTrainingEnv(num_devices=5, max_rounds=60, target_accuracy=0.9)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    full = np.full(5, len(env.level_menu) - 1)  # the last menu entry is full precision
    total, steps, terminated = 0.0, 0, False
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(full)
        total += reward
        steps += 1
        assert env.observation_space.contains(obs) and not truncated
    assert info["accuracy"] >= 0.9 and steps < 60
    # Return = minus elapsed time in reference rounds; min-max bandwidth equalises the latencies.
    assert -total * env.reference_round == pytest.approx(info["elapsed_time"])
    short = FeelTrainingEnv(num_devices=5, max_rounds=3, target_accuracy=1.0)
    short.reset(seed=0)
    for _ in range(3):
        _, _, terminated, truncated, _ = short.step(np.zeros(5, dtype=np.int64))
    assert truncated and not terminated


def test_training_env_coarse_levels_make_cheaper_rounds() -> None:
    env = FeelTrainingEnv(num_devices=5)
    env.reset(seed=0)
    _, r_coarse, *_ = env.step(np.zeros(5, dtype=np.int64))  # s = 1
    _, r_full, *_ = env.step(np.full(5, len(env.level_menu) - 1))
    assert r_full < r_coarse < 0


def test_env_bad_arguments_and_actions() -> None:
    with pytest.raises(ValueError, match="num_devices"):
        FeelAllocationEnv(num_devices=0)
    with pytest.raises(ValueError, match="render_mode"):
        FeelAllocationEnv(render_mode="human")
    with pytest.raises(ValueError, match="bandwidth"):
        FeelTrainingEnv(bandwidth="proportional")
    with pytest.raises(ValueError, match="level_menu"):
        FeelTrainingEnv(level_menu=(1, -3))
    env = FeelTrainingEnv(num_devices=4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([0, 1, 2, 99]))
    with pytest.raises(RuntimeError, match="reset"):
        FeelAllocationEnv().step(np.zeros(20, dtype=np.float32))


def test_gym_make_and_render() -> None:
    env = gym.make("quant_envs/FeelAllocation-v0", num_devices=4, render_mode="ansi")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    text = env.render()
    assert "FeelAllocation" in text and "device" in text
    env2 = gym.make("quant_envs/FeelTraining-v0", num_devices=4, render_mode="ansi")
    env2.reset(seed=0)
    env2.step(env2.action_space.sample())
    assert "round 1" in env2.render()


@pytest.mark.parametrize(
    "action",
    [np.full(8, np.nan), np.r_[np.zeros(7), np.inf], np.zeros(3), np.zeros((8, 1)), np.zeros((2, 4)), "x"],
    ids=["nan", "inf", "short", "column", "matrix", "string"],
)
def test_allocation_env_rejects_bad_actions_by_name(action) -> None:
    # K = 4: the action space is (8,); before the check NaN reached project_shares (IndexError).
    env = FeelAllocationEnv(num_devices=4, scenario_seed=0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action.*expected.*8 finite numbers.*\[-1, 1\]") as err:
        env.step(action)
    if not isinstance(action, str):
        assert str(np.shape(action)) in str(err.value)  # the message names the value's shape
    # Finite values outside the box are still clipped (the documented behaviour), not rejected.
    _, reward, *_ = env.step(np.full(8, 5.0))
    assert np.isfinite(reward)


def test_training_env_rejects_bad_actions_by_name() -> None:
    env = FeelTrainingEnv(num_devices=4)
    env.reset(seed=0)
    for action in (np.full(4, np.nan), np.full(4, 1.5), np.zeros((4, 1)), np.zeros(5)):
        with pytest.raises(ValueError, match=r"action.*expected.*4 integer indices.*\[0, 6\)"):
            env.step(action)
    assert env.sim.round == 0  # nothing was simulated for a rejected action
    env.step(np.array([0.0, 1.0, 2.0, 5.0]))  # integral floats are fine indices
    assert env.sim.round == 1
