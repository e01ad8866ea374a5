"""Gymnasium's strict determinism on every registered id: ``info`` is a function of the env's own history.

Two instances built alike and reset with the same seed must return exactly equal observations,
rewards, flags **and** ``info`` (``gymnasium.utils.env_checker.data_equivalence(..., exact=True)``),
whatever other instances did before in this process (a shared evaluation cache, a wall clock, the
test order). The rollout mirrors Gymnasium's own ``test_env_determinism_rollout`` (its generic
environment tests): actions sampled from the first instance's seeded action space, both instances
stepped with them, both reset with the same seed whenever an episode ends.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_step_determinism, data_equivalence

import quant_envs

#: Shrinks the slow live mixed-precision ids (a float network trained on first use, a retraining per
#: episode) to test size; every other id runs with its registered defaults. The registered defaults
#: of the live ids run in test_strict_determinism_of_registered_defaults.
SMALL_KWARGS: dict[str, dict[str, Any]] = {
    env_id: {"task": "digits-cnn", "finetune_steps": 0}
    for env_id in quant_envs.ENV_IDS if "MixedPrecision" in env_id and "Table" not in env_id
}

ENV_IDS = sorted(quant_envs.ENV_IDS)
SEED = 42
NUM_STEPS = 50  # as Gymnasium's own rollout test


def strict_rollout(env_id: str, num_steps: int = NUM_STEPS, **kwargs: Any) -> int:
    """Step two fresh instances of ``env_id`` alike; assert every step's data is exactly equal.

    Returns the number of episodes that ended (so a caller can check the last step was reached)."""
    env_1, env_2 = gym.make(env_id, **kwargs), gym.make(env_id, **kwargs)
    try:
        first = env_1.reset(seed=SEED), env_2.reset(seed=SEED)
        assert data_equivalence(first[0], first[1], exact=True), f"{env_id}: reset differs"
        env_1.action_space.seed(SEED)
        ended = 0
        for t in range(num_steps):
            action = env_1.action_space.sample()
            step_1, step_2 = env_1.step(action), env_2.step(action)
            for name, a, b in zip(("observation", "reward", "terminated", "truncated", "info"), step_1, step_2):
                assert data_equivalence(a, b, exact=True), f"{env_id} step {t}: {name} differs: {a!r} vs {b!r}"
            if step_1[2] or step_1[3]:
                ended += 1
                first = env_1.reset(seed=SEED), env_2.reset(seed=SEED)
                assert data_equivalence(first[0], first[1], exact=True), f"{env_id}: reset differs"
        return ended
    finally:
        env_1.close()
        env_2.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_strict_determinism(env_id: str) -> None:
    ended = strict_rollout(env_id, **SMALL_KWARGS.get(env_id, {}))
    if "MixedPrecision" in env_id:  # the info that used to differ is the last step's evaluation
        assert ended >= 1


@pytest.mark.parametrize("env_id", ENV_IDS[::-1])
def test_strict_determinism_reversed_after_caches_are_warm(env_id: str) -> None:
    """The same check in the reverse order, after a third instance has already asked for the very
    policies the pair will ask for (so a cache shared between instances holds every answer)."""
    kwargs = SMALL_KWARGS.get(env_id, {})
    warm = gym.make(env_id, **kwargs)
    warm.reset(seed=SEED)
    warm.action_space.seed(SEED)
    for _ in range(NUM_STEPS):
        _, _, terminated, truncated, _ = warm.step(warm.action_space.sample())
        if terminated or truncated:
            warm.reset(seed=SEED)
    warm.close()
    strict_rollout(env_id, **kwargs)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_step_determinism(env_id: str) -> None:
    """Gymnasium's own one-step check, on one instance."""
    env = gym.make(env_id, **SMALL_KWARGS.get(env_id, {}))
    try:
        check_step_determinism(env.unwrapped)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", sorted(SMALL_KWARGS))
def test_strict_determinism_of_registered_defaults(env_id: str) -> None:
    """The live mixed-precision ids as registered (default task and retraining recipe): one episode
    each, so the terminal step's evaluation info is compared."""
    env = gym.make(env_id)
    steps = env.unwrapped.num_steps  # one episode exactly
    env.close()
    assert strict_rollout(env_id, num_steps=steps) == 1
