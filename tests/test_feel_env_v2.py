"""FeelAllocation-v2: v1's problem in per-device rows. check_env, replay and pickle run in test_env_api.py."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import quant_envs  # noqa: F401  (registers the ids)
from quant_envs.feel import min_max_bandwidth, total_time
from quant_envs.feel.env import FeelAllocationV1Env
from quant_envs.feel.env_v2 import ROW_FEATURES, FeelAllocationV2Env
from quant_envs.feel.reference import reference_levels, reference_round_latency, reference_time


def test_registered_with_row_shapes() -> None:
    env = gym.make("quant_envs/FeelAllocation-v2", num_devices=6)
    assert env.observation_space.shape == (6, len(ROW_FEATURES)) == (6, 7)
    assert env.action_space.shape == (6, 2)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (6, 7) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    # The global columns are the same on every row, so a row rule sees them without pooling.
    np.testing.assert_array_equal(obs[:, 5:], np.broadcast_to(obs[:1, 5:], (6, 2)))


def test_rows_hold_v1_features_and_the_balanced_latency() -> None:
    v1, v2 = FeelAllocationV1Env(num_devices=5), FeelAllocationV2Env(num_devices=5)
    o1, _ = v1.reset(seed=11)
    o2, _ = v2.reset(seed=11)
    np.testing.assert_array_equal(o2[:, :5], o1[:-1].reshape(5, 5))
    assert np.all(o2[:, 5] == o1[-1])
    # Scale term, recomputed from the model: min-max split at s = 127 over the equal split's latency.
    sc = v2.scenario
    balanced = float(min_max_bandwidth(sc, reference_levels(sc)).latency) / reference_round_latency(sc)
    assert 0.0 < balanced < 1.0  # the equal split is feasible, and heterogeneous devices make it slower
    assert o2[0, 6] == pytest.approx(balanced, rel=1e-6)


def test_zero_action_is_equal_bandwidth() -> None:
    env = FeelAllocationV2Env(num_devices=8)
    env.reset(seed=4)
    _, _, terminated, truncated, info = env.step(np.zeros((8, 2), dtype=np.float32))
    assert terminated and not truncated
    np.testing.assert_allclose(info["bandwidth"], env.total_bandwidth / 8, rtol=1e-9)
    np.testing.assert_array_equal(info["levels"], 22)  # bit budget 4.5: round(2^4.5 - 1)


def test_reward_equals_v1_and_the_model_for_the_same_allocation() -> None:
    rng = np.random.default_rng(5)
    v1, v2 = FeelAllocationV1Env(num_devices=6), FeelAllocationV2Env(num_devices=6)
    for seed in range(8):
        rows = rng.uniform(-1.2, 1.2, (6, 2)).astype(np.float32)  # some entries outside the box: clipped alike
        v1.reset(seed=seed)
        v2.reset(seed=seed)
        _, r1, *_, i1 = v1.step(np.concatenate([rows[:, 0], rows[:, 1]]))
        _, r2, *_, i2 = v2.step(rows)
        assert r2 == r1
        np.testing.assert_array_equal(i2["levels"], i1["levels"])
        np.testing.assert_array_equal(i2["bandwidth"], i1["bandwidth"])
        # Independently of both environments: ln(T_ref / T) from the model's objective.
        t = total_time(v2.scenario, i2["levels"], i2["bandwidth"])
        assert r2 == pytest.approx(np.log(reference_time(v2.scenario) / t), rel=1e-9)
        assert i2["log_time_ratio"] == pytest.approx(-r2)


def test_permuting_devices_permutes_observation_rows_and_action_meaning() -> None:
    env = FeelAllocationV2Env(num_devices=6, scenario_seed=9)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(1)
    action = rng.uniform(-1, 1, (6, 2)).astype(np.float32)
    perm = rng.permutation(6)
    _, reward, *_, info = env.step(action)
    # The same device set in another order: the rows follow the devices, and the permuted action
    # gives every device the level and band it had before, hence the same total time.
    sc = env.scenario
    fields = ("data_sizes", "cpu_frequency", "cycles_per_sample", "transmit_power", "channel_gain", "grad_sq_norm")
    permuted = sc.replace(**{f: getattr(sc, f)[perm] for f in fields}, partition=None)
    twin = FeelAllocationV2Env(num_devices=6, scenario_seed=9)
    twin.reset(seed=0)
    twin.scenario, twin._rows = permuted, None
    np.testing.assert_allclose(twin._observation(), obs[perm], rtol=1e-6, atol=1e-7)
    _, reward_p, *_, info_p = twin.step(action[perm])
    np.testing.assert_array_equal(info_p["levels"], info["levels"][perm])
    np.testing.assert_allclose(info_p["bandwidth"], info["bandwidth"][perm], rtol=1e-12)
    assert reward_p == pytest.approx(reward, rel=1e-12)
    # ... while the unpermuted action on the permuted devices is a different allocation.
    twin.reset(seed=0)
    twin.scenario, twin._rows = permuted, None
    _, reward_u, *_ = twin.step(action)
    assert reward_u != pytest.approx(reward, rel=1e-6)


@pytest.mark.parametrize(
    "action",
    [np.zeros(12), np.zeros((6, 3)), np.zeros((2, 6)), np.full((6, 2), np.nan), np.array([[np.inf, 0.0]] * 6)],
)
def test_bad_actions_name_the_argument_and_the_shape(action: np.ndarray) -> None:
    env = FeelAllocationV2Env(num_devices=6)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action.*\(6, 2\)"):
        env.step(action)


def test_stepping_after_the_end_raises_until_reset() -> None:
    env = FeelAllocationV2Env(num_devices=3)
    env.reset(seed=0)
    env.step(np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((3, 2)))
    obs, _ = env.reset(seed=1)
    assert obs.shape == (3, 7)


def test_per_row_policy_builds_on_v2_and_is_equivariant() -> None:
    pytest.importorskip("stable_baselines3")
    from agents import make_agent
    from agents.cvt_policy import PerGeneratorPolicy, PerRowPolicy, row_permutation_check

    assert PerRowPolicy is PerGeneratorPolicy
    env = gym.make("quant_envs/FeelAllocation-v2", num_devices=5)
    model = make_agent("ppo", env, seed=0)
    assert isinstance(model.policy, PerGeneratorPolicy)
    obs, _ = env.reset(seed=2)
    d_mean, d_value = row_permutation_check(model.policy, obs, np.array([4, 2, 0, 1, 3]))
    assert d_mean < 1e-5 and d_value < 1e-5
    assert model.predict(obs, deterministic=True)[0].shape == (5, 2)
