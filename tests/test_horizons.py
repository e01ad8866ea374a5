"""Episode horizons under gym.make: ``max_episode_steps`` on every truncating spec, and one horizon.

The environment counts its own horizon (``max_steps`` / ``max_rounds``) and make applies
``TimeLimit(spec.max_episode_steps)``; quant_envs.horizons.HorizonSync keeps the two equal, so an
episode truncates exactly once, at the horizon the user asked for by either name.
"""

from __future__ import annotations

import inspect
import pickle

import gymnasium as gym
import numpy as np
import pytest

import quant_envs
from quant_envs.horizons import HorizonSync

#: Small instances that cannot terminate under the constant action used below (zero moves for CVT:
#: the generators never reach a CVT; the coarsest level for FEEL with an unreachable goal).
NEVER_TERMINATES: dict[str, dict] = {
    "quant_envs/CVT1D-v0": {"k": 4},
    "quant_envs/CVT2D-v0": {"k": 4},
    "quant_envs/CVT1D-v1": {"k": 4},
    "quant_envs/CVT2D-v1": {"k": 4},
    "quant_envs/FeelTraining-v0": {"num_devices": 3, "target_accuracy": 1.0},
    "quant_envs/FeelTraining-v1": {"num_devices": 3, "target_gap": 1e-12},
}
TRUNCATING = sorted(quant_envs.ENV_MAX_EPISODE_STEPS)


def _env_class(env_id: str) -> type:
    module_name, class_name = gym.spec(env_id).entry_point.split(":")
    return getattr(__import__(module_name, fromlist=[class_name]), class_name)


def _argument(env_id: str) -> str:
    return _env_class(env_id).horizon_argument


def _episode(env: gym.Env, seed: int = 0) -> list[tuple[bool, bool]]:
    """(terminated, truncated) of every step of one episode under a constant action."""
    env.reset(seed=seed)
    action = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
    flags = []
    while not flags or not any(flags[-1]):
        _, _, terminated, truncated, _ = env.step(action)
        flags.append((bool(terminated), bool(truncated)))
        assert len(flags) <= 1000, "the episode did not end"
    return flags


def _assert_truncated_once_at(flags: list[tuple[bool, bool]], horizon: int) -> None:
    assert len(flags) == horizon
    assert flags[-1] == (False, True)
    assert not any(te or tr for te, tr in flags[:-1])


def test_every_id_with_a_horizon_has_max_episode_steps_and_no_other_does() -> None:
    assert set(NEVER_TERMINATES) == set(TRUNCATING)
    for env_id in quant_envs.ENV_IDS:
        spec = gym.spec(env_id)
        has_horizon = hasattr(_env_class(env_id), "horizon_argument")
        assert has_horizon == (env_id in quant_envs.ENV_MAX_EPISODE_STEPS), env_id
        assert (spec.max_episode_steps is not None) == has_horizon, env_id
        assert (spec.additional_wrappers != ()) == has_horizon, env_id


@pytest.mark.parametrize("env_id", TRUNCATING)
def test_registered_limit_is_the_environments_default_horizon(env_id: str) -> None:
    cls = _env_class(env_id)
    default = inspect.signature(cls.__init__).parameters[cls.horizon_argument].default
    assert gym.spec(env_id).max_episode_steps == quant_envs.ENV_MAX_EPISODE_STEPS[env_id] == default


@pytest.mark.parametrize("env_id", TRUNCATING)
def test_default_horizon_truncates_exactly_once(env_id: str) -> None:
    env = gym.make(env_id, **NEVER_TERMINATES[env_id])
    horizon = quant_envs.ENV_MAX_EPISODE_STEPS[env_id]
    assert env.spec.max_episode_steps == horizon  # what SB3's TimeFeatureWrapper and RL Zoo read
    assert getattr(env.unwrapped, _argument(env_id)) == horizon
    _assert_truncated_once_at(_episode(env), horizon)


@pytest.mark.parametrize("how", ["argument", "max_episode_steps", "both"])
@pytest.mark.parametrize("env_id", TRUNCATING)
def test_custom_horizon_truncates_exactly_once(env_id: str, how: str) -> None:
    # longer than the default for the environment's own argument: the case a spec limit used to cut
    horizon = quant_envs.ENV_MAX_EPISODE_STEPS[env_id] + 5 if how == "argument" else 4
    argument = _argument(env_id)
    given = {"argument": {argument: horizon}, "max_episode_steps": {"max_episode_steps": horizon},
             "both": {argument: horizon, "max_episode_steps": horizon}}[how]
    env = gym.make(env_id, **NEVER_TERMINATES[env_id], **given)
    assert env.spec.max_episode_steps == horizon
    assert getattr(env.unwrapped, argument) == horizon
    _assert_truncated_once_at(_episode(env), horizon)
    _assert_truncated_once_at(_episode(env, seed=1), horizon)  # and again after a reset


def test_feel_observation_is_scaled_by_the_horizon_given_as_max_episode_steps() -> None:
    env = gym.make("quant_envs/FeelTraining-v1", max_episode_steps=4, **NEVER_TERMINATES["quant_envs/FeelTraining-v1"])
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.int64)
    rounds_done = 6 * env.unwrapped.num_devices  # "rounds done / max_rounds" follows the per-device rows
    fractions = [float(env.step(action)[0][rounds_done]) for _ in range(4)]
    np.testing.assert_allclose(fractions, [0.25, 0.5, 0.75, 1.0], rtol=1e-6)


def test_disagreeing_horizons_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"max_episode_steps=9 and max_steps=5 disagree"):
        gym.make("quant_envs/CVT1D-v1", max_steps=5, max_episode_steps=9)
    with pytest.raises(ValueError, match=r"max_episode_steps=9 and max_rounds=5 disagree"):
        gym.make("quant_envs/FeelTraining-v0", num_devices=3, max_rounds=5, max_episode_steps=9)


def test_without_time_limit_the_environment_still_truncates_at_its_horizon() -> None:
    env = gym.make("quant_envs/CVT1D-v0", max_episode_steps=-1, max_steps=6, k=4)
    assert env.spec.max_episode_steps is None  # gymnasium's meaning of -1: no TimeLimit
    _assert_truncated_once_at(_episode(env), 6)


def test_horizon_survives_make_from_spec_and_pickle() -> None:
    env = gym.make("quant_envs/CVT2D-v1", max_steps=7, k=4)
    again = gym.make(env.spec)  # what RL tooling does to rebuild an environment from its spec
    assert again.spec.max_episode_steps == 7
    _assert_truncated_once_at(_episode(again), 7)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    env.step(action)
    twin = pickle.loads(pickle.dumps(env))  # mid-episode, wrappers included
    flags = [tuple(twin.step(action)[2:4]) for _ in range(6)]
    assert flags[-1] == (False, True) and not any(any(f) for f in flags[:-1])


def test_make_vec_sub_environments_keep_the_horizon() -> None:
    vec = gym.make_vec("quant_envs/CVT1D-v0", num_envs=2, vectorization_mode="sync", max_steps=3, k=4)
    vec.reset(seed=0)
    action = np.zeros(vec.action_space.shape, dtype=np.float32)
    truncated = [vec.step(action)[3].tolist() for _ in range(3)]
    assert truncated == [[False, False], [False, False], [True, True]]
    vec.close()


def test_wrapper_refuses_an_environment_without_a_horizon() -> None:
    env = gym.make("quant_envs/FeelAllocation-v1", num_devices=3)
    with pytest.raises(TypeError, match="no episode horizon"):
        HorizonSync(env)
