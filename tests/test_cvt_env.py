"""CVT1D-v0 / CVT2D-v0: observations, rewards, episode ends, Lloyd as a policy, errors, rendering."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import quant_envs  # noqa: F401  (registers the ids)
from quant_envs.cvt import CVTProblem
from quant_envs.cvt.env import CVT1DEnv, CVT2DEnv


def _lloyd_action(env, obs: np.ndarray) -> np.ndarray:
    """Lloyd's method as a policy: move every generator to its centroid (offset columns)."""
    d = env.unwrapped._dim
    off = obs.reshape(env.unwrapped.k, 2 * d + 1)[:, d : 2 * d]
    act = off / env.unwrapped.action_scale
    return (act[:, 0] if d == 1 else act).astype(np.float32)


@pytest.mark.parametrize(("env_id", "kwargs"), [
    ("quant_envs/CVT1D-v0", {"k": 8, "density": "exponential", "domain": (-1.0, 2.0)}),
    ("quant_envs/CVT2D-v0", {"k": 8, "density": "gaussian", "domain": [(0, 0), (2, 0), (2, 1), (0.5, 1.5)]}),
])
def test_observation_matches_the_model(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs)
    obs, info = env.reset(seed=11)
    assert env.observation_space.contains(obs)
    raw = env.unwrapped
    z = raw.generators
    problem = CVTProblem(kwargs["k"], kwargs["density"], kwargs["domain"])
    ev = problem.evaluate(z)  # independent evaluation of the same generators
    d = raw._dim
    rows = obs.reshape(raw.k, 2 * d + 1)
    h = (problem.domain.size / raw.k) ** (1 / d)
    np.testing.assert_allclose(rows[:, :d].squeeze(), problem.domain.to_unit(z), atol=1e-6)
    np.testing.assert_allclose(rows[:, d : 2 * d].squeeze(), np.clip((ev.centroids - z) / h, -4, 4), atol=1e-5)
    np.testing.assert_allclose(rows[:, -1], ev.masses * raw.k / ev.masses.sum(), rtol=1e-5)
    assert info["energy"] == pytest.approx(ev.energy, rel=1e-12)
    assert info["rel_grad_norm"] == pytest.approx(1.0)


@pytest.mark.parametrize("env_cls", [CVT1DEnv, CVT2DEnv])
def test_lloyd_policy_terminates_and_rewards_telescope(env_cls) -> None:
    env = env_cls(k=8, reward_scale=2.0)
    obs, info = env.reset(seed=5)
    e0, total, steps = info["energy"], 0.0, 0
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(_lloyd_action(env, obs))
        total += reward
        steps += 1
    assert terminated and not truncated and steps < env.max_steps
    assert info["rel_grad_norm"] <= env.tol
    # Sum of scaled energy decreases = scale * (1 - E_T / E_0).
    assert total == pytest.approx(2.0 * (1.0 - info["energy"] / e0), rel=1e-9)
    assert info["energy"] < e0


def test_truncation_at_step_cap() -> None:
    env = CVT2DEnv(k=6, max_steps=3)
    env.reset(seed=0)
    for t in range(3):
        _, reward, terminated, truncated, info = env.step(np.zeros((6, 2), dtype=np.float32))
        assert reward == 0.0 and not terminated
        assert truncated == (t == 2)
    assert info["step"] == 3


def test_moves_are_scaled_and_kept_in_the_domain() -> None:
    env = CVT1DEnv(k=4, action_scale=0.5)
    env.reset(options={"generators": [0.1, 0.4, 0.6, 0.9]})
    env.step(np.array([1.0, -1.0, 5.0, 1.0], dtype=np.float32))  # 5 is clipped to 1
    # One unit is action_scale * (1 / k) = 0.125; the last generator stops at the boundary.
    np.testing.assert_allclose(env.generators, [0.225, 0.275, 0.725, 1.0])


def test_same_seed_same_start_and_different_seeds_differ() -> None:
    a, b = CVT2DEnv(), CVT2DEnv()
    oa, _ = a.reset(seed=3)
    ob, _ = b.reset(seed=3)
    np.testing.assert_array_equal(oa, ob)
    oc, _ = b.reset(seed=4)
    assert not np.array_equal(oa, oc)


@pytest.mark.parametrize(("cls", "kwargs", "error", "match"), [
    (CVT1DEnv, {"domain": "unit-square"}, ValueError, "interval"),
    (CVT2DEnv, {"domain": (0.0, 1.0)}, ValueError, "polygon"),
    (CVT1DEnv, {"tol": 0.0}, ValueError, "tol=0.0"),
    (CVT1DEnv, {"max_steps": 0}, ValueError, "max_steps=0"),
    (CVT1DEnv, {"action_scale": -1}, ValueError, "action_scale=-1"),
    (CVT2DEnv, {"render_mode": "human"}, ValueError, "render_mode='human'"),
    (CVT2DEnv, {"density": "zipf"}, ValueError, "density='zipf'"),
])
def test_bad_env_arguments(cls, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        cls(**kwargs)


def test_bad_steps() -> None:
    env = CVT1DEnv(k=4)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4, dtype=np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full(4, np.nan, dtype=np.float32))


@pytest.mark.parametrize("env_cls", [CVT1DEnv, CVT2DEnv])
def test_render_modes(env_cls) -> None:
    text = env_cls(k=5, render_mode="ansi")
    text.reset(seed=0)
    assert "E =" in text.render()
    pic = env_cls(k=5, render_mode="rgb_array")
    pic.reset(seed=0)
    frame = pic.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.std() > 0  # something was drawn
