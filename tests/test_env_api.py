"""Every registered environment id against Gymnasium's and SB3's checkers, determinism and docs.

The list of ids comes from ``quant_envs.ENV_IDS``: an id registered there is tested here with no
further edit. ``FAST_KWARGS`` only shrinks an environment to test size; it never skips one.
"""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import quant_envs
from quant_envs.base import DOCSTRING_SECTIONS

# Small configurations so the checkers run in seconds; defaults are exercised elsewhere.
FAST_KWARGS: dict[str, dict] = {
    "quant_envs/MixedPrecision-v0": {"task": "digits-cnn", "finetune_steps": 0},
    "quant_envs/MixedPrecisionContinuous-v0": {"task": "digits-cnn", "finetune_steps": 0},
    "quant_envs/MixedPrecision-v1": {"task": "digits-cnn", "finetune_steps": 0},
    "quant_envs/MixedPrecisionContinuous-v1": {"task": "digits-cnn", "finetune_steps": 0},
    "quant_envs/MixedPrecisionMultiHardware-v0": {"task": "digits-cnn", "finetune_steps": 0},
}

SECTIONS = DOCSTRING_SECTIONS

ENV_IDS = sorted(quant_envs.ENV_IDS)


def make(env_id: str) -> gym.Env:
    return gym.make(env_id, **FAST_KWARGS.get(env_id, {}))


def test_every_id_is_registered() -> None:
    for env_id in ENV_IDS:
        assert env_id in gym.registry, env_id


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id: str) -> None:
    env = make(env_id)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", category=UserWarning)  # a checker warning is a failure
            gym_check_env(env.unwrapped, skip_render_check=False)
    finally:
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id: str) -> None:
    env = make(env_id)
    try:
        sb3_check_env(env.unwrapped, warn=True)
    finally:
        env.close()


def _valid_action(env: gym.Env, rng: np.random.Generator):
    masks = getattr(env.unwrapped, "action_masks", None)
    if masks is not None and isinstance(env.action_space, gym.spaces.Discrete):
        allowed = np.flatnonzero(masks())
        return int(rng.choice(allowed))
    return env.action_space.sample()


def _rollout(env_id: str, seed: int, max_steps: int = 40) -> list[tuple]:
    env = make(env_id)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    trace = [(np.asarray(obs).copy(), 0.0, False, False, _comparable(info))]
    for _ in range(max_steps):
        obs, reward, terminated, truncated, info = env.step(_valid_action(env, rng))
        trace.append((np.asarray(obs).copy(), float(reward), terminated, truncated, _comparable(info)))
        if terminated or truncated:
            break
    env.close()
    return trace


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_episode(env_id: str) -> None:
    first, second = _rollout(env_id, seed=3), _rollout(env_id, seed=3)
    assert len(first) == len(second)
    for (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) in zip(first, second):
        np.testing.assert_array_equal(o1, o2)
        assert (r1, te1, tr1) == (r2, te2, tr2)
        assert i1 == i2  # info too, ``cached`` included


#: info keys that would legitimately differ between two same-seed episodes: wall-clock times (no
#: environment reports one; ``cached`` is each instance's own history, so it is compared).
_UNCOMPARABLE = ("wall_time_s", "time_s")


def _comparable(value):
    """``value`` (an info dict) as plain, exactly comparable Python values, wall-clock keys removed."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in _UNCOMPARABLE}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:
        return "nan"
    return value


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_round_trip(env_id: str) -> None:
    """An environment mid-episode survives pickle (checkpoints, worker processes) and goes on identically."""
    env = make(env_id)
    rng = np.random.default_rng(0)
    env.reset(seed=5)
    twin = pickle.loads(pickle.dumps(env.unwrapped))
    action = _valid_action(env, rng)  # the same action for both: they must answer alike
    a, b = env.unwrapped.step(action), twin.step(action)
    np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]))
    assert (float(a[1]), a[2], a[3]) == (float(b[1]), b[2], b[3])
    assert _comparable(a[4]) == _comparable(b[4])
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_docstring_has_gymnasium_sections(env_id: str) -> None:
    env_cls = gym.spec(env_id).entry_point
    module_name, class_name = env_cls.split(":")
    cls = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    doc = inspect.getdoc(cls) or ""
    missing = [s for s in SECTIONS if f"## {s}" not in doc]
    assert not missing, f"{class_name} docstring lacks sections: {missing}"


def test_import_registers_without_importing_torch() -> None:
    # Registration is lazy: `import quant_envs` alone must stay light.
    code = "import sys, quant_envs; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_module_colon_id_syntax_in_fresh_subprocess() -> None:
    # the default task, as a new user gets it (trained once into $QUANT_ENVS_CACHE, then cached)
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('quant_envs:quant_envs/MixedPrecision-v0')\n"
        "obs, info = env.reset(seed=0)\n"
        "assert env.observation_space.contains(obs)\n"
        "for _ in range(env.unwrapped.num_steps):\n"
        "    obs, r, term, trunc, info = env.step(int(info['action_mask'].nonzero()[0][-1]))\n"
        "assert term and info['budget_used'] <= 1 + 1e-9 and 0 < info['accuracy'] <= 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


@pytest.mark.parametrize("env_id", sorted(set(ENV_IDS) - set(quant_envs.ENV_MAX_EPISODE_STEPS)))
def test_id_without_max_episode_steps_ends_by_termination(env_id: str) -> None:
    """An id whose spec has no ``max_episode_steps`` must not truncate (tests/test_horizons.py has the others)."""
    assert gym.spec(env_id).max_episode_steps is None
    env = make(env_id)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(1000):
        _, _, terminated, truncated, _ = env.step(_valid_action(env, rng))
        assert not truncated, f"{env_id} truncates: register its horizon in quant_envs.ENV_MAX_EPISODE_STEPS"
        if terminated:
            break
    else:
        pytest.fail(f"{env_id} ran 1000 steps without ending: a horizon it truncates at belongs in its spec")
    env.close()
