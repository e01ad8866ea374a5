"""quant_envs.wrappers (RLlib's Dict action-mask layout, projection counts) and ids in fresh worker processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import quant_envs  # noqa: F401
from agents.runs import UsageError, gym_id, make_vec_env
from quant_envs.wrappers import ActionMaskObservation, ProjectionCounter

REPO = Path(__file__).resolve().parents[1]
SMALL = {"task": "digits-cnn", "budget_fraction": 0.4}


def test_action_mask_observation_carries_the_envs_own_mask() -> None:
    env = ActionMaskObservation(gym.make("quant_envs/MixedPrecision-v0", **SMALL))
    check_env(env.unwrapped)
    obs, _ = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    rng = np.random.default_rng(0)
    done = False
    while not done:
        mask = env.unwrapped.action_masks()
        np.testing.assert_array_equal(obs["action_mask"], mask.astype(np.int8))
        assert obs["action_mask"].sum() >= 1  # the exact mask never strands an episode
        action = int(rng.choice(np.flatnonzero(obs["action_mask"])))
        obs, _, terminated, truncated, info = env.step(action)
        assert "projected_from" not in info  # a masked agent's actions are never replaced
        done = terminated or truncated


def test_action_mask_observation_refuses_a_box_environment() -> None:
    with pytest.raises(TypeError, match="Discrete"):
        ActionMaskObservation(gym.make("quant_envs/CVT1D-v0"))


def test_projection_counter_counts_every_replaced_action() -> None:
    env = ProjectionCounter(gym.make("quant_envs/MixedPrecision-v0", **{**SMALL, "budget_fraction": 0.25}))
    rng = np.random.default_rng(1)
    total_counted = total_seen = 0
    for episode in range(20):
        env.reset(seed=episode)
        seen, done = 0, False
        while not done:
            _, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
            seen += "projected_from" in info
            assert info["projected_actions"] == seen
            done = terminated or truncated
        total_counted += info["projected_actions"]
        total_seen += seen
    assert total_counted == total_seen > 0  # unmasked random actions at a tight budget do get projected


def test_gym_id_names_the_module_for_our_ids_only() -> None:
    assert gym_id("quant_envs/CVT1D-v0") == "quant_envs:quant_envs/CVT1D-v0"
    assert gym_id("CartPole-v1") == "CartPole-v1"
    with pytest.raises(UsageError, match="--vec-env 'threads'"):
        make_vec_env("quant_envs/CVT1D-v0", 1, 0, {}, vec_env="threads")


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_subproc_vec_env_workers_find_the_ids(tmp_path: Path, start_method: str) -> None:
    """A script that never imports quant_envs itself: its spawn/forkserver workers must still build the env."""
    script = tmp_path / "workers.py"
    script.write_text(textwrap.dedent(f"""
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import SubprocVecEnv

        if __name__ == "__main__":
            venv = make_vec_env("quant_envs:quant_envs/CVT1D-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                                vec_env_kwargs={{"start_method": "{start_method}"}})
            obs = venv.reset()
            venv.step(venv.action_space.sample()[None].repeat(2, 0))
            print("workers ok", obs.shape)
            venv.close()
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "workers ok (2," in proc.stdout


def test_train_helper_builds_subprocess_workers_by_plain_id() -> None:
    venv = make_vec_env("quant_envs/CVT1D-v0", 2, 0, {}, vec_env="subproc")
    try:
        assert venv.num_envs == 2 and venv.get_attr("spec")[0].id == "quant_envs/CVT1D-v0"
        obs = venv.reset()
        assert obs.shape[0] == 2 and np.isfinite(obs).all()
    finally:
        venv.close()
