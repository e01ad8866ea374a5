"""Reinforcement-learning agents: stable-baselines3 / sb3-contrib with per-environment hyperparameters.

>>> from agents import make_agent
>>> model = make_agent("maskable_ppo", env, seed=0, learning_rate=1e-3)

Hyperparameters live in RL-Zoo-style YAML files (``agents/hyperparams/<algo>.yml``), one entry per
environment id with a ``default`` entry for the rest; keyword overrides win.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from quant_envs.checks import check_bool, check_choice, check_float, check_int

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"

#: Agent name -> (import path, whether it needs a Discrete action space).
AGENTS: dict[str, str] = {
    "maskable_ppo": "sb3_contrib:MaskablePPO",
    "ppo": "stable_baselines3:PPO",
    "ddpg_haq": "agents.ddpg_haq:HAQDDPG",
}


def agent_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 algorithm class behind agent ``name``."""
    check_choice("algo", name, AGENTS)
    module, cls = AGENTS[name].split(":")
    return getattr(__import__(module, fromlist=[cls]), cls)


#: RL-Zoo keys of a YAML entry that set up the run, not the algorithm: the default ``--timesteps``
#: and ``--n-envs`` for that environment.
RUN_KEYS = ("n_timesteps", "n_envs")


def _yaml_entry(name: str, env_id: str | None) -> dict[str, Any]:
    check_choice("algo", name, AGENTS)
    with open(HYPERPARAMS_DIR / f"{name}.yml", encoding="utf-8") as f:
        table = yaml.safe_load(f) or {}
    return dict(table.get(env_id) or table.get("default") or {})


def load_hyperparams(name: str, env_id: str | None = None) -> dict[str, Any]:
    """The YAML hyperparameters of agent ``name`` for ``env_id`` (or its ``default`` entry).

    Only the algorithm's constructor arguments: the run keys (:data:`RUN_KEYS`) are in :func:`run_defaults`.
    """
    return {k: v for k, v in _yaml_entry(name, env_id).items() if k not in RUN_KEYS}


def run_defaults(name: str, env_id: str | None = None) -> dict[str, int]:
    """The YAML entry's ``n_timesteps`` and ``n_envs`` (RL Zoo's keys), where it sets them.

    They are the defaults of ``--timesteps`` and ``--n-envs`` for this (agent, environment).
    """
    out = {}
    for key, value in _yaml_entry(name, env_id).items():
        if key in RUN_KEYS:
            value = int(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}.yml [{env_id}]: {key}={value!r} is not allowed; expected an integer >= 1")
            out[key] = value
    return out


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


# ------------------------------------------------------------------------------ hyperparameter ranges
# The ranges SB3 documents (or asserts deep inside learn()); checked before any environment is built.
def _int(lo: int) -> Any:
    return lambda name, v: check_int(name, v, min_value=lo)


def _real(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Any:
    return lambda name, v: check_float(name, v, min_value=lo, max_value=hi, min_inclusive=not lo_open)


def _rate(name: str, value: Any) -> Any:  # a number > 0, or a schedule (callable of progress remaining)
    return value if callable(value) else check_float(name, value, min_value=0.0, min_inclusive=False)


def _optional(check: Any) -> Any:
    return lambda name, v: None if v is None else check(name, v)


def _train_freq(name: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        check_int(f"{name}[0]", value[0], min_value=1)
        check_choice(f"{name}[1]", value[1], ("step", "episode"))
        return value
    return check_int(name, value, min_value=1)


def _gradient_steps(name: str, value: Any) -> Any:
    if check_int(name, value) == -1 or value >= 1:
        return value
    raise ValueError(f"{name}={value!r} is not allowed; expected -1 (as many as environment steps) or an integer >= 1")


_PPO_RANGES: dict[str, Any] = {
    "learning_rate": _rate, "n_steps": _int(1), "batch_size": _int(2), "n_epochs": _int(1),
    "gamma": _real(0.0, 1.0), "gae_lambda": _real(0.0, 1.0), "clip_range": _rate,
    "clip_range_vf": _optional(_rate), "normalize_advantage": check_bool, "ent_coef": _real(0.0),
    "vf_coef": _real(0.0), "max_grad_norm": _real(0.0, lo_open=True), "target_kl": _optional(_real(0.0, lo_open=True)),
    "stats_window_size": _int(1), "verbose": _int(0), "seed": _optional(_int(0)),
}
_DDPG_RANGES: dict[str, Any] = {
    "learning_rate": _rate, "buffer_size": _int(1), "learning_starts": _int(0), "batch_size": _int(1),
    "tau": _real(0.0, 1.0, lo_open=True), "gamma": _real(0.0, 1.0), "train_freq": _train_freq,
    "gradient_steps": _gradient_steps, "n_steps": _int(1), "optimize_memory_usage": check_bool,
    "verbose": _int(0), "seed": _optional(_int(0)),
    # HAQ's own (agents.ddpg_haq)
    "actor_lr": _real(0.0, lo_open=True), "critic_lr": _real(0.0, lo_open=True), "warmup_episodes": _int(0),
    "noise_sigma": _real(0.0, lo_open=True), "noise_decay": _real(0.0, 1.0, lo_open=True),
    "baseline_alpha": _real(0.0, 1.0), "episode_steps": _optional(_int(1)),
}
HYPERPARAM_RANGES: dict[str, dict[str, Any]] = {"maskable_ppo": _PPO_RANGES, "ppo": _PPO_RANGES, "ddpg_haq": _DDPG_RANGES}


def check_hyperparams(name: str, params: dict[str, Any]) -> None:
    """Raise ValueError/TypeError naming the first hyperparameter outside its documented range.

    Unknown names are left to the algorithm's constructor (``make_agent`` names them).
    """
    ranges = HYPERPARAM_RANGES[check_choice("algo", name, AGENTS)]
    for key, value in params.items():
        if key in ranges:
            ranges[key](key, value)


def check_compatible(name: str, action_space: Any) -> None:
    """Raise ValueError unless agent ``name`` can act in ``action_space`` (before any training)."""
    from gymnasium import spaces

    if name == "maskable_ppo" and not isinstance(action_space, spaces.Discrete):
        raise ValueError(f"algo='maskable_ppo' needs a Discrete action space; env has {action_space}")
    if name == "ppo" and not isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete, spaces.Box,
                                                       spaces.MultiBinary)):
        raise ValueError(f"algo='ppo' needs a Discrete, MultiDiscrete, MultiBinary or Box action space; env has {action_space}")
    if name == "ddpg_haq" and not (isinstance(action_space, spaces.Box) and action_space.shape == (1,)):
        raise ValueError(f"algo='ddpg_haq' needs a Box action space of shape (1,): HAQ's agent picks one value "
                         f"per step (e.g. quant_envs/MixedPrecisionContinuous-v0); env has {action_space}")


def resolve_policy(policy: Any) -> Any:
    """A YAML ``policy``: SB3's names ("MlpPolicy") as they are; a custom class by import path,
    dotted as RL Zoo reads it (``agents.cvt_policy.PerGeneratorPolicy``) or ``module:Class``."""
    if not isinstance(policy, str) or (":" not in policy and "." not in policy):
        return policy
    module, sep, attr = policy.partition(":") if ":" in policy else policy.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"policy={policy!r} is not allowed: {exc}; expected an SB3 policy name "
                         f"(MlpPolicy) or an import path (package.module.Class)") from None


def hyperparams_for(name: str, env_id: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The YAML hyperparameters for ``env_id`` with ``overrides`` applied (what ``make_agent`` uses)."""
    params = load_hyperparams(name, env_id)
    params.update(overrides)
    return params


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
    params = hyperparams_for(name, env_id, overrides)
    check_hyperparams(name, params)
    params.setdefault("device", "cpu")  # small MLPs: the CPU is faster than a GPU round trip
    policy = resolve_policy(params.pop("policy", "MlpPolicy"))
    check_compatible(name, getattr(env, "action_space", None))
    try:
        return cls(policy, env, **params)
    except TypeError as exc:  # an unknown hyperparameter: name it instead of a deep traceback
        raise ValueError(f"bad hyperparameter for algo={name!r}: {exc}") from None
