"""Behaviour of SplineCompander-v0 and ScalarQuantizer-v0 beyond the generic API checks
(tests/test_env_api.py runs gymnasium's and SB3's check_env on both ids)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import quant_envs  # noqa: F401  (registers the ids)
from baselines.compander import lloyd_max, spline_compander
from quant_envs.compander.env import ScalarQuantizerEnv, SplineCompanderEnv
from quant_envs.compander.quantizer import cell_moments


def test_scalar_quantizer_reaches_the_lloyd_max_optimum_by_steering() -> None:
    env = gym.make("quant_envs/ScalarQuantizer-v0", source="laplacian", levels=6, max_steps=200)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs) and obs.shape == (3 * 6 + 1,)
    opt = lloyd_max("laplacian", 6)  # the solver's optimum is the env's reference
    assert info["optimum_distortion"] == pytest.approx(opt.distortion, rel=1e-12)
    d0, total = info["distortion"], 0.0
    assert d0 > opt.distortion
    unwrapped = env.unwrapped
    scale = unwrapped.step_size * unwrapped._bound
    terminated = False
    while not terminated:
        action = np.clip((opt.thresholds - info["thresholds"]) / scale, -1, 1).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        assert not truncated
        assert env.observation_space.contains(obs)
    assert info["step"] == 200
    assert info["gap_db"] < 1e-9
    np.testing.assert_allclose(info["thresholds"], opt.thresholds, atol=1e-9)
    # Rewards are normalised distortion decreases: they telescope.
    assert total == pytest.approx((d0 - info["distortion"]) / opt.distortion, rel=1e-9)


def test_scalar_quantizer_levels_are_centroids_and_never_beat_the_optimum() -> None:
    env = ScalarQuantizerEnv(source="gaussian", levels=8, max_steps=30, normalize_reward=False)
    rng = np.random.default_rng(0)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        for _ in range(30):
            obs, reward, terminated, _, info = env.step(rng.uniform(-1, 1, size=7).astype(np.float32))
            p, m1, _ = cell_moments("gaussian", info["thresholds"])
            np.testing.assert_allclose(info["levels"], m1 / p, rtol=1e-12)
            assert info["distortion"] >= info["optimum_distortion"] * (1 - 1e-12)
            assert np.all(np.diff(info["thresholds"]) > 0)
        assert terminated


def test_spline_env_matches_the_solver_and_its_return_telescopes() -> None:
    env = gym.make("quant_envs/SplineCompander-v0", source="gaussian", levels=16, max_steps=10)
    obs, info = env.reset(seed=5)
    assert obs.shape == (3,) and env.observation_space.contains(obs)
    start = info["sqnr_db"]
    ret = 0.0
    for _ in range(10):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        ret += reward
    assert terminated and not truncated
    assert ret == pytest.approx(info["sqnr_db"] - start, abs=1e-9)
    # The env's SQNR is the solver's for the same (unoptimised) segment threshold.
    same = spline_compander(
        "gaussian", 16, support=info["x_max"], segment_thresholds=info["segment_thresholds"], optimize_thresholds=False
    )
    assert info["sqnr_db"] == pytest.approx(same.sqnr_db, abs=1e-10)


def test_spline_env_steered_to_the_solvers_threshold_reaches_its_sqnr() -> None:
    best = spline_compander("laplacian", 32, degree=2)
    target_u = best.params["segment_thresholds_over_support"][0]
    env = SplineCompanderEnv(source="laplacian", levels=32, max_steps=40, random_start=False)
    obs, info = env.reset(seed=0)
    assert info["sqnr_db"] == pytest.approx(best.params["unoptimized_sqnr_db"], abs=1e-10)
    assert info["x_max"] == pytest.approx(best.support, rel=1e-12)
    for _ in range(40):
        a = np.clip((target_u - obs[0]) / env.step_size, -1, 1)
        obs, reward, terminated, _, info = env.step(np.array([a], dtype=np.float32))
    assert info["sqnr_db"] == pytest.approx(best.sqnr_db, abs=1e-5)
    assert info["sqnr_db"] >= info["equal_segments_sqnr_db"]
    # obs[1] is the SQNR gap to the optimal compander in units of 10 dB.
    assert obs[1] == pytest.approx((info["sqnr_db"] - info["optimal_compander_sqnr_db"]) / 10, abs=1e-6)


def test_spline_env_with_several_segments_keeps_thresholds_ordered() -> None:
    env = SplineCompanderEnv(source="gaussian", levels=16, segments=4, max_steps=15)
    obs, info = env.reset(seed=2)
    assert env.action_space.shape == (3,)
    env.action_space.seed(2)
    for _ in range(15):
        obs, *_, info = env.step(env.action_space.sample())
        assert np.all(np.diff(obs[:3]) >= 0.01 - 1e-6)  # 0.01 x_max apart, up to float32 rounding of obs
        assert np.all(np.diff(env._u) >= 0.01 - 1e-12)  # the state itself keeps the exact gap
        assert 0.0 < obs[0] and obs[2] < 1.0


@pytest.mark.parametrize("env_id", ["quant_envs/ScalarQuantizer-v0", "quant_envs/SplineCompander-v0"])
def test_render_modes(env_id: str) -> None:
    env = gym.make(env_id, render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and "dB" in text
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def test_env_bad_arguments() -> None:
    with pytest.raises(ValueError, match="source='cauchy'"):
        ScalarQuantizerEnv(source="cauchy")
    with pytest.raises(ValueError, match="levels=1"):
        ScalarQuantizerEnv(levels=1)
    with pytest.raises(ValueError, match="segments=1"):
        SplineCompanderEnv(segments=1)
    with pytest.raises(ValueError, match="render_mode='human'"):
        SplineCompanderEnv(render_mode="human")
    with pytest.raises(ValueError, match="step_size"):
        SplineCompanderEnv(step_size=0.0)


@pytest.mark.parametrize("make", [lambda: SplineCompanderEnv(levels=8), lambda: ScalarQuantizerEnv(levels=8)], ids=["spline", "scalar"])
def test_env_bad_actions_named_before_the_state_moves(make) -> None:
    env = make()
    obs0, _ = env.reset(seed=0)
    n = env.action_space.shape[0]
    cases = [
        (np.full(n, np.nan), r"action with shape .* holds NaN or inf"),
        (np.full(n, np.inf), r"action with shape .* holds NaN or inf"),
        (np.zeros(n + 4), rf"action has shape \({n + 4},\).*expected shape \({n},\): {n} finite numbers in \[-1, 1\]"),
        (np.zeros((1, n)), rf"action has shape \(1, {n}\)"),
        ("x", r"action='x' is not allowed"),
    ]
    for action, match in cases:
        with pytest.raises(ValueError, match=match):
            env.step(action)
    # A rejected action leaves the episode where it was: the next valid step starts from obs0.
    obs, _, _, _, info = env.step(np.zeros(n, dtype=np.float32))
    assert info["step"] == 1
    np.testing.assert_array_equal(obs[:n], obs0[:n])  # zero move keeps the thresholds
    with pytest.raises(TypeError, match="random_start='no'"):  # a string is never a bool
        SplineCompanderEnv(random_start="no")
    with pytest.raises(TypeError, match="normalize_reward=2"):  # nor a number
        ScalarQuantizerEnv(normalize_reward=2)
