"""What training and comparison share: usage errors, environment ids and construction, run folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import quant_envs
from agents import parse_overrides

DEFAULT_ENV = "quant_envs/MixedPrecision-v1"


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


def env_name(env_id: str) -> str:
    """``quant_envs/MixedPrecision-v0`` -> ``MixedPrecision-v0`` (a folder name)."""
    return env_id.split("/")[-1]


def check_env_id(env_id: str) -> None:
    """Raise :class:`UsageError` unless ``env_id`` is registered with gymnasium."""
    import gymnasium as gym

    if env_id not in gym.registry:
        raise UsageError(f"--env {env_id!r} is not a registered environment; quant_envs ids: {', '.join(sorted(quant_envs.ENV_IDS))}")


def parse_kwargs(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` items (values as YAML) as a dict; bad items are a :class:`UsageError` naming ``flag``."""
    try:
        return parse_overrides(items, flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


VEC_ENV_KINDS = ("dummy", "subproc")


def gym_id(env_id: str) -> str:
    """``env_id`` in Gymnasium's ``module:id`` form for this package's ids, so that a fresh worker
    process (spawn, forkserver, a Ray worker) imports ``quant_envs`` and finds the id."""
    return f"quant_envs:{env_id}" if env_id in quant_envs.ENV_IDS else env_id


def make_vec_env(env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any], vec_env: str = "dummy") -> Any:
    """SB3's vectorised environment (``vec_env``: "dummy", one process, or "subproc", one process per
    copy, started with ``forkserver``); bad ``env_kwargs`` are a :class:`UsageError`."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # lazy: agents.vec_env brings stable_baselines3 and torch; agents.training imports without them
    from agents.vec_env import BatchedRewardVecEnv

    if vec_env not in VEC_ENV_KINDS:
        raise UsageError(f"--vec-env {vec_env!r} is not allowed; expected one of: {', '.join(VEC_ENV_KINDS)}")
    # forkserver, not fork: a parent that already ran torch must not fork its thread pool (workers hang)
    # "dummy": a DummyVecEnv that scores the mixed-precision rewards due together in one evaluate_many call
    cls, cls_kwargs = ((BatchedRewardVecEnv, None) if vec_env == "dummy"
                       else (SubprocVecEnv, {"start_method": "forkserver"}))
    try:
        return sb3_make_vec_env(gym_id(env_id), n_envs=n_envs, seed=seed, env_kwargs=env_kwargs,
                                vec_env_cls=cls, vec_env_kwargs=cls_kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--env-kwargs {env_kwargs}: {exc}") from None


def problem_of(vec_env: Any) -> Any:
    """The mixed-precision problem behind a vectorised environment, or None for the other problems.

    Only mixed-precision environments are asked (a worker process must pickle what it sends back, and
    the other problems' models need not be picklable).
    """
    spec = vec_env.get_attr("spec")[0]
    entry = str(getattr(spec, "entry_point", "") or "")
    if not entry.startswith("quant_envs.mixed_precision"):
        return None
    try:
        return vec_env.get_attr("problem")[0]
    except AttributeError:
        return None


def default_run_dir(env_id: str, algo: str, seed: int, *, existing: bool = False) -> Path:
    """Where a run goes without ``--out``: ``runs/<env>/<algo>-s<seed>``, numbered as RL Zoo does.

    A new run (``existing=False``) takes the first of ``<algo>-s<seed>``, ``<algo>-s<seed>_2``, ...
    that holds no run; ``existing=True`` (``--resume``) names the last one that does.
    """
    base = Path("runs") / env_name(env_id) / f"{algo}-s{seed}"
    candidates = [base]
    while (candidates[-1] / "config.json").exists():
        candidates.append(base.with_name(f"{base.name}_{len(candidates) + 1}"))
    if existing:
        return candidates[-2] if len(candidates) > 1 else base
    return candidates[-1]
