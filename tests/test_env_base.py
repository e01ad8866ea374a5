"""QuantEnv, the base of every environment: one episode guard, one render plumbing."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import quant_envs
from quant_envs.base import STEP_AFTER_END, STEP_BEFORE_RESET, QuantEnv

ENV_IDS = sorted(quant_envs.ENV_IDS)

# Test-size arguments: short horizons so that every episode reaches its end within a few steps.
SMALL: dict[str, dict] = {
    "quant_envs/MixedPrecision-v0": {"task": "digits-cnn", "finetune_steps": 0},
    "quant_envs/MixedPrecisionContinuous-v0": {"task": "digits-cnn", "finetune_steps": 0},
    "quant_envs/MixedPrecision-v1": {"task": "digits-cnn", "finetune_steps": 0},
    "quant_envs/MixedPrecisionContinuous-v1": {"task": "digits-cnn", "finetune_steps": 0},
    "quant_envs/MixedPrecisionTable-v0": {"table": "digits-cnn"},
    "quant_envs/MixedPrecisionTableContinuous-v0": {"table": "digits-cnn"},
    "quant_envs/MixedPrecisionMultiHardware-v0": {"table": "digits-cnn"},
    "quant_envs/SplineCompander-v0": {"max_steps": 3},
    "quant_envs/SplineCompander-v1": {"max_steps": 3},
    "quant_envs/ScalarQuantizer-v0": {"max_steps": 3},
    "quant_envs/FeelAllocation-v0": {"num_devices": 3},
    "quant_envs/FeelAllocation-v1": {"num_devices": 3},
    "quant_envs/FeelAllocation-v2": {"num_devices": 3},
    "quant_envs/FeelTraining-v0": {"num_devices": 3, "max_rounds": 2},
    "quant_envs/FeelTraining-v1": {"num_devices": 3, "max_rounds": 2},
    "quant_envs/CVT1D-v0": {"max_steps": 3},
    "quant_envs/CVT2D-v0": {"max_steps": 3},
    "quant_envs/CVT1D-v1": {"max_steps": 3},
    "quant_envs/CVT2D-v1": {"max_steps": 3},
}

#: Ids whose state is made by the constructor: stepping before reset() was always allowed there.
STEPS_BEFORE_RESET = {"quant_envs/MixedPrecision-v0", "quant_envs/MixedPrecisionContinuous-v0",
                      "quant_envs/MixedPrecision-v1", "quant_envs/MixedPrecisionContinuous-v1",
                      "quant_envs/MixedPrecisionTable-v0", "quant_envs/MixedPrecisionTableContinuous-v0",
                      "quant_envs/MixedPrecisionMultiHardware-v0"}


def make_unwrapped(env_id: str, **kwargs) -> QuantEnv:
    """The environment itself (no OrderEnforcing or TimeLimit wrapper, whose errors come first)."""
    return gym.make(env_id, **{**quant_envs.ENV_KWARGS.get(env_id, {}), **SMALL[env_id], **kwargs}).unwrapped


def _action(env: gym.Env, rng: np.random.Generator):
    masks = getattr(env, "action_masks", None)
    if masks is not None and isinstance(env.action_space, gym.spaces.Discrete):
        return int(rng.choice(np.flatnonzero(masks())))
    return env.action_space.sample()


def test_every_id_has_test_arguments():
    assert set(SMALL) == set(ENV_IDS)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_after_the_end_raises_the_same_error(env_id: str):
    env = make_unwrapped(env_id)
    assert isinstance(env, QuantEnv)
    env.action_space.seed(0)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(200):
        _, _, terminated, truncated, _ = env.step(_action(env, rng))
        if terminated or truncated:
            break
    else:
        pytest.fail(f"{env_id}: no end within 200 steps")
    with pytest.raises(RuntimeError) as info:
        env.step(env.action_space.sample())
    assert str(info.value) == STEP_AFTER_END
    env.reset(seed=1)  # reset() lifts it
    env.step(_action(env, rng))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_before_reset(env_id: str):
    env = make_unwrapped(env_id)
    if env_id in STEPS_BEFORE_RESET:
        env.step(_action(env, np.random.default_rng(0)))  # the constructor made the first state
    else:
        with pytest.raises(RuntimeError) as info:
            env.step(env.action_space.sample())
        assert str(info.value) == STEP_BEFORE_RESET


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_mode_is_checked_and_render_without_it_warns(env_id: str):
    with pytest.raises(ValueError, match="render_mode='video' is not allowed"):
        make_unwrapped(env_id, render_mode="video")  # ("human" would make gym.make add a wrapper)
    env = make_unwrapped(env_id)
    env.reset(seed=0)
    assert env.metadata["render_modes"] == ["ansi", "rgb_array"]
    with pytest.warns(UserWarning, match="render\\(\\) called without a render_mode"):
        assert env.render() is None
    text = make_unwrapped(env_id, render_mode="ansi")
    text.reset(seed=0)
    assert isinstance(text.render(), str) and text.render()
