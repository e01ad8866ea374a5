"""The settings of one training run, validated once: the schema of a run's ``config.json``.

:class:`TrainConfig` is what ``train`` runs with and what it writes to ``<run>/config.json``
(:meth:`TrainConfig.to_json`); :meth:`TrainConfig.from_json` reads it back, also from runs written
before the execution settings (``n_envs``, ``checkpoint_freq``, ``eval_freq``, ``eval_episodes``,
``vec_env``) were recorded: those take their defaults.

Bad values raise :class:`InvalidSetting` (a ``ValueError``) or :class:`InvalidSettingType` (a
``TypeError``) naming the argument, the value and what is allowed; :meth:`InvalidSetting.flag_message`
says the same in terms of ``train.py``'s flags, for the command line.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

import quant_envs
from agents import AGENTS
from agents.runs import DEFAULT_ENV, VEC_ENV_KINDS

__all__ = ["FLAGS", "RESUME_KEYS", "InvalidSetting", "InvalidSettingType", "TrainConfig"]

#: The command-line flag of each setting (for messages of ``train.py``).
FLAGS: dict[str, str] = {
    "env_id": "--env", "algo": "--algo", "timesteps": "--timesteps", "seed": "--seed",
    "env_kwargs": "--env-kwargs", "hyperparams": "--hyperparams", "max_evaluations": "--max-evaluations",
    "n_envs": "--n-envs", "checkpoint_freq": "--checkpoint-freq", "eval_freq": "--eval-freq",
    "eval_episodes": "--eval-episodes", "vec_env": "--vec-env",
}

#: The settings a resumed run must share with the run it continues (the checkpoint would
#: otherwise continue on another problem); ``timesteps`` may grow, the execution settings change.
RESUME_KEYS = ("env_id", "algo", "seed", "env_kwargs", "hyperparams", "max_evaluations")


class _SettingError:
    """What a bad setting carries: the argument, the value and what is allowed."""

    argument: str
    value: Any
    expected: str

    def _init(self, argument: str, value: Any, expected: str) -> str:
        self.argument, self.value, self.expected = argument, value, expected
        return f"{argument}={value!r} is not allowed; expected {expected}"

    def flag_message(self) -> str:
        """The message in terms of ``train.py``'s flag (``--timesteps 0 is not allowed; ...``)."""
        return f"{FLAGS.get(self.argument, self.argument)} {self.value!r} is not allowed; expected {self.expected}"


class InvalidSetting(_SettingError, ValueError):
    """A setting with a value outside what is allowed."""

    def __init__(self, argument: str, value: Any, expected: str) -> None:
        ValueError.__init__(self, self._init(argument, value, expected))


class InvalidSettingType(_SettingError, TypeError):
    """A setting of the wrong type (a string for a number, a list for a mapping)."""

    def __init__(self, argument: str, value: Any, expected: str) -> None:
        TypeError.__init__(self, self._init(argument, value, expected))


def _integer(name: str, value: Any, lowest: int) -> int:
    expected = f"an integer >= {lowest}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSettingType(name, value, expected)
    if value < lowest:
        raise InvalidSetting(name, value, expected)
    return int(value)


def _mapping(name: str, value: Any) -> dict[str, Any]:
    expected = "a mapping of argument names (str) to values"
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidSettingType(name, value, expected)
    return dict(value)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run's settings (``train``'s arguments but the output folder and the run controls).

    ``env_id`` must be registered with Gymnasium and ``algo`` one of ``agents.AGENTS``; the
    hyperparameters are checked against the agent's documented ranges by ``train`` (that needs the
    YAML defaults of ``env_id``).
    """

    env_id: str = DEFAULT_ENV
    algo: str = "maskable_ppo"
    timesteps: int = 1000
    seed: int = 0
    env_kwargs: Mapping[str, Any] | None = dataclasses.field(default_factory=dict)  # kept as a dict
    hyperparams: Mapping[str, Any] | None = dataclasses.field(default_factory=dict)  # kept as a dict
    max_evaluations: int | None = None
    n_envs: int = 1
    checkpoint_freq: int = 500
    eval_freq: int = 0
    eval_episodes: int = 5
    vec_env: str = "dummy"

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if not isinstance(self.env_id, str) or self.env_id not in gym.registry:
            raise InvalidSetting("env_id", self.env_id, "a registered environment id; quant_envs ids: "
                                 + ", ".join(sorted(quant_envs.ENV_IDS)))
        if self.algo not in AGENTS:
            raise InvalidSetting("algo", self.algo, f"one of: {', '.join(AGENTS)}")
        put("timesteps", _integer("timesteps", self.timesteps, 1))
        put("seed", _integer("seed", self.seed, 0))
        put("n_envs", _integer("n_envs", self.n_envs, 1))
        put("checkpoint_freq", _integer("checkpoint_freq", self.checkpoint_freq, 1))
        if self.max_evaluations is not None:
            put("max_evaluations", _integer("max_evaluations", self.max_evaluations, 1))
        put("eval_freq", _integer("eval_freq", self.eval_freq, 0))
        put("eval_episodes", _integer("eval_episodes", self.eval_episodes, 1))
        if self.vec_env not in VEC_ENV_KINDS:
            raise InvalidSetting("vec_env", self.vec_env, f"one of: {', '.join(VEC_ENV_KINDS)}")
        put("env_kwargs", _mapping("env_kwargs", self.env_kwargs))
        put("hyperparams", _mapping("hyperparams", self.hyperparams))

    # ------------------------------------------------------------------------ config.json
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_json(self) -> dict[str, Any]:
        """The dict ``config.json`` holds (JSON types: tuples in the arguments become lists)."""
        out = {name: getattr(self, name) for name in self.field_names()}
        return json.loads(json.dumps(out, default=str))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A config from what ``config.json`` holds; settings it lacks (older runs) take their defaults,
        and names it should not hold are refused."""
        if not isinstance(data, Mapping):
            raise InvalidSettingType("config", data, "a JSON object of run settings")
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise InvalidSetting("config", unknown, f"only the settings {', '.join(cls.field_names())}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    def resume_keys(self) -> dict[str, Any]:
        """The settings a resumed run must share (:data:`RESUME_KEYS`), as ``config.json`` holds them."""
        data = self.to_json()
        return {k: data[k] for k in RESUME_KEYS}
