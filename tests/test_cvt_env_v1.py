"""CVT1D-v1 / CVT2D-v1: per-generator rows, scale terms, log reward, converged termination, the
equivariant policy, argument checks and the end of an episode."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import quant_envs  # noqa: F401  (registers the ids)
from quant_envs.cvt import CVTProblem
from quant_envs.cvt.env import CVT1DEnv, CVT2DEnv
from quant_envs.cvt.env_v1 import CVT1DEnvV1, CVT2DEnvV1, feature_columns
from quant_envs.cvt.reference import reference_energy


def _lloyd(env, obs: np.ndarray) -> np.ndarray:
    d = env.unwrapped._dim
    return (obs[:, d : 2 * d] / env.unwrapped.action_scale).astype(np.float32)


@pytest.mark.parametrize(("env_id", "kwargs"), [
    ("quant_envs/CVT1D-v1", {"k": 6, "density": "exponential", "domain": (-1.0, 2.0)}),
    ("quant_envs/CVT2D-v1", {"k": 7, "density": "exponential", "domain": [(0, 0), (2, 0), (2, 1), (0.5, 1.5)]}),
])
def test_rows_match_an_independent_evaluation(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs)
    obs, info = env.reset(seed=2)
    raw = env.unwrapped
    d = raw._dim
    assert obs.shape == (kwargs["k"], len(feature_columns(d))) and env.observation_space.contains(obs)
    problem = CVTProblem(kwargs["k"], kwargs["density"], kwargs["domain"])
    z = raw.generators
    ev = problem.evaluate(z)
    h = (problem.domain.size / raw.k) ** (1 / d)
    m = ev.masses.sum() / raw.k
    np.testing.assert_allclose(obs[:, :d].squeeze(), problem.domain.to_unit(z), atol=1e-6)
    np.testing.assert_allclose(obs[:, d : 2 * d].squeeze(), np.clip((ev.centroids - z) / h, -4, 4), atol=1e-5)
    np.testing.assert_allclose(obs[:, 2 * d], ev.masses / m, rtol=1e-5)
    np.testing.assert_allclose(obs[:, 2 * d + 1 : 3 * d + 1].squeeze(), np.clip(ev.gradient / (2 * m * h), -16, 16),
                               rtol=1e-5, atol=1e-6)
    e_star = raw.reference_energy
    glob = obs[:, -4:]
    assert np.all(glob == glob[0])  # the global terms repeat in every row
    np.testing.assert_allclose(glob[0, :3], [min(ev.energy / e_star, 100), 1.0, 1.0], rtol=1e-6)
    assert info["energy_ratio_reference"] == pytest.approx(ev.energy / e_star, rel=1e-12)


def test_reference_energy_is_the_exact_uniform_optimum() -> None:
    # 1-D uniform density: the unique CVT z_i = (2i - 1) / (2k) has E = 1 / (12 k^2).
    assert reference_energy(CVTProblem(8, "uniform")) == pytest.approx(1.0 / (12 * 64), rel=1e-12)
    # 2-D, k = 4, uniform square: the 2 x 2 grid (E = 1/24) is the best of the starts.
    assert reference_energy(CVTProblem(4, "uniform", "unit-square")) == pytest.approx(1.0 / 24.0, rel=1e-9)


@pytest.mark.parametrize("env_cls", [CVT1DEnvV1, CVT2DEnvV1])
def test_lloyd_rule_converges_and_rewards_are_log_ratios(env_cls) -> None:
    env = env_cls(k=8, max_steps=400, reward_scale=2.0)
    obs, info = env.reset(seed=5)
    e0, total, done = info["energy"], 0.0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(_lloyd(env, obs))
        total += reward
        done = terminated or truncated
    assert terminated and info["converged"] in ("reference", "stationary")
    if info["converged"] == "reference":
        assert info["energy_ratio_reference"] <= 1 + env.tol
    assert total == pytest.approx(2.0 * np.log(e0 / info["energy"]), rel=1e-9)  # telescoping log ratios
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(env.action_space.shape, dtype=np.float32))
    env.reset(seed=5)  # reset makes it usable again
    env.step(np.zeros(env.action_space.shape, dtype=np.float32))


@pytest.mark.parametrize("env_cls", [CVT1DEnv, CVT2DEnv, CVT1DEnvV1, CVT2DEnvV1])
def test_step_after_truncation_raises_until_reset(env_cls) -> None:
    env = env_cls(k=5, max_steps=2, **({"reference_energy": 1e-9} if env_cls in (CVT1DEnvV1, CVT2DEnvV1) else {}))
    env.reset(seed=0)
    zero = np.zeros(env.action_space.shape, dtype=np.float32)
    env.step(zero)
    *_, truncated, _ = env.step(zero)
    assert truncated
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step(zero)


@pytest.mark.parametrize(("cls", "kwargs", "error", "match"), [
    (CVT1DEnvV1, {"k": "8"}, TypeError, "k='8'"),
    (CVT1DEnvV1, {"k": 8.0}, TypeError, "k=8.0"),
    (CVT1DEnvV1, {"k": True}, TypeError, "k=True"),
    (CVT1DEnvV1, {"k": 0}, ValueError, "k=0"),
    (CVT1DEnvV1, {"k": 5000}, ValueError, "k=5000"),
    (CVT1DEnvV1, {"tol": "0.1"}, TypeError, "tol='0.1'"),
    (CVT1DEnvV1, {"tol": float("nan")}, ValueError, "tol=nan"),
    (CVT1DEnvV1, {"tol": 0.0}, ValueError, "tol=0.0"),
    (CVT2DEnvV1, {"max_steps": "50"}, TypeError, "max_steps='50'"),
    (CVT2DEnvV1, {"action_scale": "1"}, TypeError, "action_scale='1'"),
    (CVT2DEnvV1, {"reward_scale": 0}, ValueError, "reward_scale=0"),
    (CVT2DEnvV1, {"reward_scale": False}, TypeError, "reward_scale=False"),
    (CVT1DEnvV1, {"density": 3}, TypeError, "density=3"),
    (CVT1DEnvV1, {"density": True}, TypeError, "density=True"),
    (CVT1DEnvV1, {"domain": (0, 1e-300)}, ValueError, r"domain=\(0\.0, 1e-300\).*representable"),
    (CVT1DEnv, {"domain": (0, 1e-300)}, ValueError, "domain="),
    (CVT1DEnvV1, {"domain": (1e9, 1e9 + 1e-3)}, ValueError, "largest coordinate"),
    (CVT1DEnvV1, {"domain": ("0", "1")}, TypeError, "domain\\[0\\]='0'"),
    (CVT2DEnvV1, {"domain": [(0, 0), (1e-200, 0), (0, 1e-200)]}, ValueError, "extent"),
    (CVT2DEnvV1, {"domain": [("0", 0), (1, 0), (0, 1)]}, TypeError, "string"),
    (CVT2DEnvV1, {"render_mode": 1}, ValueError, "render_mode=1"),
    (CVT2DEnvV1, {"tol": 1.0}, ValueError, "tol=1.0"),
    (CVT2DEnvV1, {"reference_energy": "1"}, TypeError, "reference_energy='1'"),
    (CVT2DEnvV1, {"reference_energy": -1.0}, ValueError, "reference_energy=-1.0"),
])
def test_bad_arguments_name_the_argument(cls, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        cls(**kwargs)


def test_bad_actions() -> None:
    env = CVT2DEnvV1(k=4, reference_energy=1.0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action has shape"):
        env.step(np.zeros(8, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(np.full((4, 2), np.inf, dtype=np.float32))


def test_per_generator_policy_is_permutation_equivariant() -> None:
    pytest.importorskip("torch")
    from agents import make_agent
    from agents.cvt_policy import PerGeneratorPolicy, row_permutation_check

    env = gym.make("quant_envs/CVT2D-v1", k=6, reference_energy=1.0)  # E* plays no part here
    model = make_agent("ppo", env, seed=0)  # the YAML entry selects the policy
    assert isinstance(model.policy, PerGeneratorPolicy)
    # weights of a trained-looking size: perturb so the check is not trivially at init zeros
    import torch

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    obs, _ = env.reset(seed=1)
    perm = np.random.default_rng(1).permutation(6)
    dm, dv = row_permutation_check(model.policy, obs, perm)
    assert dm < 1e-5 and dv < 1e-5
    # the parameter count does not depend on k
    n6 = sum(p.numel() for p in model.policy.parameters())
    big = make_agent("ppo", gym.make("quant_envs/CVT2D-v1", k=12, reference_energy=1.0), env_id="quant_envs/CVT2D-v1", seed=0)
    assert sum(p.numel() for p in big.policy.parameters()) == n6


def test_per_generator_policy_refuses_flat_spaces() -> None:
    pytest.importorskip("torch")
    from agents import make_agent

    with pytest.raises(ValueError, match=r"shape \(k, f\)"):
        make_agent("ppo", gym.make("quant_envs/CVT1D-v0"), env_id="quant_envs/CVT1D-v1")
