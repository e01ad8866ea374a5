"""What other libraries need of the ids, checked without those libraries (they live in their own
virtual environments: tests/test_ray.py, tests/test_rl_zoo.py, tests/test_torchrl.py).

* RLlib takes a 1-D ``Box`` (or a Dict of them with ``action_mask``) observation and a
  ``Discrete``, ``MultiDiscrete`` or 1-D ``Box`` action: :func:`quant_envs.wrappers.for_rllib`
  must give every id such spaces, and the wrapped environment must still pass Gymnasium's checker.
* RL Baselines3 Zoo reads ``agents/hyperparams/ppo.yml`` as it is: every entry needs
  ``n_timesteps``, and a custom policy must be a dotted path that RL Zoo's
  ``rl_zoo3.utils.get_class_by_name`` imports (module = everything before the last dot).
"""

from __future__ import annotations

import importlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

import quant_envs
from agents import HYPERPARAMS_DIR, load_hyperparams, make_agent, resolve_policy
from quant_envs.wrappers import ActionMaskObservation, FlattenAction, for_rllib

SMALL = {"task": "digits-cnn", "finetune_steps": 0}
ENV_IDS = sorted(quant_envs.ENV_IDS)


def _make(env_id: str) -> gym.Env:
    live = "MixedPrecision" in env_id and "Table" not in env_id
    return gym.make(env_id, **(SMALL if live else {}))


def _flat_box(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and len(space.shape) == 1


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_for_rllib_gives_every_id_spaces_rllib_takes(env_id: str) -> None:
    env = for_rllib(_make(env_id))
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if isinstance(act_space, spaces.Discrete):  # every Discrete id is masked
            assert isinstance(env, ActionMaskObservation)
            assert isinstance(obs_space, spaces.Dict) and set(obs_space.spaces) == {"observations", "action_mask"}
            assert _flat_box(obs_space["observations"]) and obs_space["action_mask"].shape == (act_space.n,)
        else:
            assert _flat_box(obs_space), obs_space
            assert isinstance(act_space, spaces.MultiDiscrete) or _flat_box(act_space), act_space
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the old ids' "out of date" notice
            # the wrapped stack is what RLlib steps, so it is what is checked
            warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
            check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_flatten_action_reshapes_row_major_and_refuses_a_wrong_shape() -> None:
    raw = gym.make("quant_envs/CVT2D-v1")
    env = FlattenAction(gym.wrappers.FlattenObservation(raw))
    k = raw.unwrapped.action_space.shape[0]
    assert env.action_space.shape == (2 * k,)
    flat = np.arange(2 * k, dtype=np.float32) / (2 * k)
    np.testing.assert_array_equal(env.action(flat), flat.reshape(k, 2))  # generator i: entries 2i, 2i + 1
    # a step through the wrapper is the step of the reshaped action
    twin = gym.make("quant_envs/CVT2D-v1")
    env.reset(seed=1)
    twin.reset(seed=1)
    obs, reward, *_ = env.step(flat)
    obs2, reward2, *_ = twin.step(flat.reshape(k, 2))
    np.testing.assert_array_equal(obs, np.asarray(obs2).reshape(-1))
    assert reward == reward2
    with pytest.raises(ValueError, match=r"shape \(3,\) is not allowed"):
        env.action(np.zeros(3, dtype=np.float32))


def test_for_rllib_leaves_a_space_rllib_takes_alone() -> None:
    env = gym.make("quant_envs/SplineCompander-v1")
    assert for_rllib(env) is env


def _zoo_tables() -> dict[str, dict]:
    return {path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) for path in HYPERPARAMS_DIR.glob("*.yml")}


def _zoo_get_class_by_name(name: str) -> type:
    """rl_zoo3.utils.get_class_by_name (2.9.2), which RL Zoo applies to a ``policy`` containing a dot."""
    return getattr(importlib.import_module(".".join(name.split(".")[:-1])), name.split(".")[-1])


def test_ppo_yaml_entries_carry_what_rl_zoo_reads() -> None:
    """ppo.yml is the file RL Zoo's algorithms cover (maskable_ppo and HAQ's DDPG are not RL Zoo algorithms)."""
    table = _zoo_tables()["ppo"]
    for env_id, entry in table.items():
        assert isinstance(entry.get("n_timesteps"), int) and entry["n_timesteps"] >= 1, env_id
        policy = entry["policy"]
        assert ":" not in policy, f"{env_id}: RL Zoo imports dotted paths only, got {policy!r}"
        if "." in policy:
            assert _zoo_get_class_by_name(policy) is resolve_policy(policy)
        assert env_id == "default" or env_id in quant_envs.ENV_IDS
    # one id per problem is named, so RL Zoo (which has no `default`) can train each problem
    problems = {"MixedPrecision", "Compander", "Feel", "CVT"}
    assert {p for p in problems for env_id in table if p in env_id} == problems


def test_resolve_policy_takes_both_import_forms_and_names_a_bad_one() -> None:
    from agents.cvt_policy import PerGeneratorPolicy

    assert resolve_policy("agents.cvt_policy.PerGeneratorPolicy") is PerGeneratorPolicy
    assert resolve_policy("agents.cvt_policy:PerGeneratorPolicy") is PerGeneratorPolicy
    assert resolve_policy("MlpPolicy") == "MlpPolicy"
    with pytest.raises(ValueError, match="policy='agents.cvt_policy.NoSuchPolicy' is not allowed"):
        resolve_policy("agents.cvt_policy.NoSuchPolicy")


def test_train_py_builds_the_yaml_policy_and_ignores_the_run_keys() -> None:
    from agents.cvt_policy import PerGeneratorPolicy

    assert "n_timesteps" not in load_hyperparams("ppo", "quant_envs/CVT1D-v1")
    model = make_agent("ppo", gym.make("quant_envs/CVT1D-v1"), seed=0)
    assert isinstance(model.policy, PerGeneratorPolicy)
