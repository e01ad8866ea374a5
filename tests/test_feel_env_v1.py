"""FeelAllocation-v1 / FeelTraining-v1 and the robustness fixes of every FEEL id (render, vector
envs, bad arguments, stepping after the end). check_env itself runs in test_env_api.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

import quant_envs  # noqa: F401  (registers the ids)
from baselines.feel import solve
from quant_envs.feel import DEFAULT_CONVERGENCE, make_scenario, total_time
from quant_envs.feel.env import (
    FeelAllocationEnv,
    FeelAllocationV1Env,
    FeelTrainingEnv,
    FeelTrainingV1Env,
)
from quant_envs.feel.reference import equal_bandwidth, reference_levels, reference_time

FEEL_IDS = ["quant_envs/FeelAllocation-v0", "quant_envs/FeelAllocation-v1", "quant_envs/FeelTraining-v0", "quant_envs/FeelTraining-v1"]


def test_reference_module_is_equal_bandwidth_8bit() -> None:
    sc = make_scenario(5, seed=2)
    # Independent computation: B / K per device and s = 127 through the validated objective.
    assert reference_time(sc) == pytest.approx(total_time(sc, np.full(5, 127), np.full(5, sc.total_bandwidth / 5)), rel=1e-12)
    small = make_scenario(3, seed=0, max_levels=31)
    np.testing.assert_array_equal(reference_levels(small), 31)  # capped at max_levels
    np.testing.assert_allclose(equal_bandwidth(small).sum(), small.total_bandwidth)


def test_allocation_v1_every_action_is_a_valid_allocation_and_reward_is_log_ratio() -> None:
    env = FeelAllocationV1Env(num_devices=6)
    rng = np.random.default_rng(0)
    rewards = []
    for i in range(40):
        env.reset(seed=100 + i)
        action = rng.uniform(-1, 1, 12).astype(np.float32)
        _, reward, terminated, _, info = env.step(action)
        assert terminated and not info["projected"]
        bw = info["bandwidth"]
        assert np.all(bw > 0) and bw.sum() == pytest.approx(env.total_bandwidth, rel=1e-9)  # whole band, no clip
        # Reward recomputed from the model's objective and the reference, independently of the env.
        t = total_time(env.scenario, info["levels"], bw)
        assert reward == pytest.approx(np.log(reference_time(env.scenario) / t), rel=1e-9)
        assert info["log_time_ratio"] == pytest.approx(-reward)
        rewards.append(reward)
    # v0 gave exactly the same clipped value for every random action; here they must differ.
    assert np.std(rewards) > 0.3 and len(set(np.round(rewards, 6))) == len(rewards)


def test_allocation_v1_zero_action_is_equal_bandwidth_and_ao_scores_higher() -> None:
    env = FeelAllocationV1Env(num_devices=8, scenario_seed=2)
    env.reset(seed=0)
    _, r_zero, *_, info = env.step(np.zeros(16, dtype=np.float32))
    np.testing.assert_allclose(info["bandwidth"], env.total_bandwidth / 8, rtol=1e-9)  # softmax(0) = 1/K
    ao = solve(env.scenario, "ao")
    r_ao = np.log(env.reference_time / ao.total_time)
    assert r_ao > r_zero and r_ao > 0  # AO beats the reference and the zero action


def test_training_v1_goal_is_model_gap_and_menu_holds_ao_levels() -> None:
    env = FeelTrainingV1Env(num_devices=10)
    assert env.target_gap == DEFAULT_CONVERGENCE.target_gap == 0.01
    env.reset(seed=0)
    ao = solve(env.scenario, "ao")
    assert set(ao.levels.tolist()) <= set(env.level_menu.tolist())  # v0's menu could not express AO's levels
    idx = np.array([env.level_menu.tolist().index(s) for s in ao.levels])
    rounds, terminated = 0, False
    while not terminated:
        _, _, terminated, truncated, info = env.step(idx)
        rounds += 1
        assert not truncated
    assert info["gap"] <= 0.01
    # The model predicts N(s) = ao.rounds (43.5 on this scenario); the simulator needs 45 rounds.
    assert abs(rounds - ao.rounds) <= 0.2 * ao.rounds


@pytest.mark.parametrize("env_id", FEEL_IDS)
def test_step_after_end_raises_until_reset(env_id: str) -> None:
    kwargs = {"num_devices": 3}
    if "Training" in env_id:
        kwargs["max_rounds"] = 2
    env = gym.make(env_id, **kwargs).unwrapped
    env.reset(seed=0)
    done = False
    while not done:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        done = term or trunc
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())
    env.reset(seed=1)
    env.step(env.action_space.sample())  # works again after reset


@pytest.mark.parametrize("env_id", FEEL_IDS)
def test_rgb_array_render_and_sb3_make_vec_env(env_id: str) -> None:
    # SB3's make_vec_env passes render_mode="rgb_array"; v0 used to refuse it.
    vec = make_vec_env(env_id, n_envs=1, seed=0, env_kwargs={"num_devices": 3})
    vec.reset()
    vec.step(np.array([vec.action_space.sample()]))
    frame = vec.envs[0].render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 0
    vec.close()


@pytest.mark.parametrize(
    ("cls", "kwargs", "name", "err"),
    [
        (FeelTrainingEnv, {"level_menu": 5}, "level_menu", TypeError),
        (FeelTrainingEnv, {"level_menu": "1,3"}, "level_menu", TypeError),
        (FeelTrainingEnv, {"level_menu": (3, 3)}, "level_menu", ValueError),
        (FeelTrainingEnv, {"level_menu": ()}, "level_menu", ValueError),
        (FeelTrainingEnv, {"level_menu": (1, 2.5)}, "level_menu", TypeError),
        (FeelTrainingEnv, {"level_menu": (1, 70000)}, "level_menu", ValueError),
        (FeelTrainingEnv, {"target_accuracy": "0.9"}, "target_accuracy", TypeError),
        (FeelTrainingEnv, {"max_rounds": True}, "max_rounds", TypeError),
        (FeelTrainingEnv, {"eval_split": "train"}, "eval_split", ValueError),
        (FeelTrainingV1Env, {"target_gap": 0.0}, "target_gap", ValueError),
        (FeelTrainingV1Env, {"scenario_seed": -1}, "scenario_seed", ValueError),
        (FeelAllocationEnv, {"total_bandwidth": "200e3"}, "total_bandwidth", TypeError),
        (FeelAllocationEnv, {"max_levels": 0}, "max_levels", ValueError),
        (FeelAllocationEnv, {"reward_clip": float("nan")}, "reward_clip", ValueError),
        (FeelAllocationV1Env, {"logit_scale": 0}, "logit_scale", ValueError),
        (FeelAllocationV1Env, {"logit_scale": "3"}, "logit_scale", TypeError),
        (FeelAllocationV1Env, {"num_devices": 2.0}, "num_devices", TypeError),
        (FeelAllocationV1Env, {"render_mode": "human"}, "render_mode", ValueError),
    ],
)
def test_bad_constructor_arguments_name_the_argument(cls, kwargs, name, err) -> None:
    with pytest.raises(err, match=name):
        cls(**kwargs)


def test_async_vector_env_after_parent_used_torch_threads() -> None:
    # Regression: fork after torch's OpenMP pool started made the workers hang in a futex wait.
    # Run in a fresh interpreter with a timeout so a regression fails instead of hanging the suite.
    script = textwrap.dedent(
        """
        import gymnasium as gym, torch
        import quant_envs
        torch.set_num_threads(2)
        (torch.rand(4_000_000) * 2).sum()  # starts the parent's OpenMP pool
        for env_id in ("quant_envs/FeelTraining-v0", "quant_envs/FeelTraining-v1"):
            e = gym.make(env_id, num_devices=3)
            e.reset(seed=0); e.step(e.action_space.sample())
            v = gym.make_vec(env_id, num_envs=2, vectorization_mode="async", num_devices=3)
            v.reset(seed=0); v.step(v.action_space.sample()); v.close()
        assert torch.get_num_threads() == 2  # the env restores the caller's setting
        print("ok")
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # the pool must exist in the parent (verified to hang before the fix)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
