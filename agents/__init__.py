"""Reinforcement-learning agents: stable-baselines3 / sb3-contrib with per-environment hyperparameters.

>>> from agents import make_agent
>>> model = make_agent("maskable_ppo", env, seed=0, learning_rate=1e-3)

Hyperparameters live in RL-Zoo-style YAML files (``agents/hyperparams/<algo>.yml``), one entry per
environment id with a ``default`` entry for the rest; keyword overrides win.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from quant_envs._checks import check_choice

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"

#: Agent name -> (import path, whether it needs a Discrete action space).
AGENTS: dict[str, str] = {
    "maskable_ppo": "sb3_contrib:MaskablePPO",
    "ppo": "stable_baselines3:PPO",
    "ddpg_haq": "agents.ddpg_haq:HAQDDPG",
}


def agent_class(name: str) -> type:
    """The SB3 algorithm class behind agent ``name``."""
    check_choice("algo", name, AGENTS)
    module, cls = AGENTS[name].split(":")
    return getattr(__import__(module, fromlist=[cls]), cls)


def load_hyperparams(name: str, env_id: str | None = None) -> dict[str, Any]:
    """The YAML hyperparameters of agent ``name`` for ``env_id`` (or its ``default`` entry)."""
    check_choice("algo", name, AGENTS)
    with open(HYPERPARAMS_DIR / f"{name}.yml", encoding="utf-8") as f:
        table = yaml.safe_load(f) or {}
    return dict(table.get(env_id) or table.get("default") or {})


def parse_overrides(items: list[str] | None, what: str = "--hyperparams") -> dict[str, Any]:
    """``["key=value", ...]`` -> dict, values parsed as YAML (numbers, booleans, lists, dicts)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r} is not allowed; expected key=value")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f"{what} {item!r}: cannot parse the value {value!r}") from None
        if isinstance(parsed, str):  # YAML 1.1 reads "1e-3" as a string; users mean a number
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out[key] = parsed
    return out


def make_agent(name: str, env: Any, *, env_id: str | None = None, **overrides: Any) -> Any:
    """Build agent ``name`` on ``env`` (a gymnasium env or an SB3 VecEnv).

    ``env_id`` selects the YAML entry (taken from ``env.spec.id`` when not given); ``overrides``
    replace YAML values and take any constructor argument of the SB3 class (``seed``,
    ``tensorboard_log``, ``verbose``, ...).
    """
    cls = agent_class(name)
    if env_id is None:
        spec = getattr(env, "spec", None)
        env_id = getattr(spec, "id", None)
    params = load_hyperparams(name, env_id)
    params.update(overrides)
    params.setdefault("device", "cpu")  # small MLPs: the CPU is faster than a GPU round trip
    policy = params.pop("policy", "MlpPolicy")
    if isinstance(policy, str) and ":" in policy:  # "module:Class", e.g. agents.cvt_policy:PerGeneratorPolicy
        module, attr = policy.split(":", 1)
        policy = getattr(__import__(module, fromlist=[attr]), attr)
    action_space = getattr(env, "action_space", None)
    from gymnasium import spaces

    if name == "maskable_ppo" and not isinstance(action_space, spaces.Discrete):
        raise ValueError(f"algo='maskable_ppo' needs a Discrete action space; env has {action_space}")
    if name == "ddpg_haq" and not isinstance(action_space, spaces.Box):
        raise ValueError(f"algo='ddpg_haq' needs a Box action space (e.g. quant_envs/MixedPrecisionContinuous-v0); env has {action_space}")
    try:
        return cls(policy, env, **params)
    except TypeError as exc:  # an unknown hyperparameter: name it instead of a deep traceback
        raise ValueError(f"bad hyperparameter for algo={name!r}: {exc}") from None
