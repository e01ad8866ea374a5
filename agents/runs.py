"""What training and comparison share: usage errors, environment ids and construction, run folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_ENV = "quant_envs/MixedPrecision-v0"


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


def env_name(env_id: str) -> str:
    """``quant_envs/MixedPrecision-v0`` -> ``MixedPrecision-v0`` (a folder name)."""
    return env_id.split("/")[-1]


def check_env_id(env_id: str) -> None:
    """Raise :class:`UsageError` unless ``env_id`` is registered with gymnasium."""
    import gymnasium as gym

    import quant_envs

    if env_id not in gym.registry:
        raise UsageError(f"--env {env_id!r} is not a registered environment; quant_envs ids: {', '.join(sorted(quant_envs.ENV_IDS))}")


def parse_kwargs(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` items (values as YAML) as a dict; bad items are a :class:`UsageError` naming ``flag``."""
    from agents import parse_overrides

    try:
        return parse_overrides(items, flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def make_vec_env(env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any]) -> Any:
    """SB3's vectorised environment; bad ``env_kwargs`` are a :class:`UsageError`."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

    try:
        return sb3_make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--env-kwargs {env_kwargs}: {exc}") from None


def problem_of(vec_env: Any) -> Any:
    """The mixed-precision problem behind a vectorised environment, or None for the other problems."""
    try:
        return vec_env.get_attr("problem")[0]
    except AttributeError:
        return None


def default_run_dir(env_id: str, algo: str, seed: int) -> Path:
    """``runs/<env>/<algo>-s<seed>``: where a run goes without ``--out``."""
    return Path("runs") / env_name(env_id) / f"{algo}-s{seed}"
