"""Replay a trained agent: load a run's ``model.zip``, run deterministic episodes, report what it achieves.

    python train.py replay runs/MixedPrecision-v0/maskable_ppo-s0 --episodes 3

The environment is rebuilt from the run's own ``config.json`` (id and arguments), so the replay is
of the problem the agent was trained on. For a masked environment the policy acts with the masks,
as it was trained.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from agents import agent_class
from agents.runs import UsageError, gym_id
from quant_envs.atomic_io import json_ready

#: info keys worth printing when an environment reports them (objective in its own units).
OBJECTIVE_KEYS = ("accuracy", "budget_used", "sqnr_db", "total_time", "energy_ratio", "policy")


def replay(run_dir: str | os.PathLike[str], episodes: int = 1, seed: int = 10_000,
           verbose: bool = True) -> list[dict[str, Any]]:
    """Run ``episodes`` deterministic episodes of the run's model from seeds ``seed, seed + 1, ...``.

    Returns one record per episode: ``return``, ``length`` and the final ``info``'s objective keys.
    The default seeds lie outside those of training runs (0..), so the episodes are held out.
    """
    import gymnasium as gym

    run_dir = Path(run_dir)
    if episodes < 1:
        raise UsageError(f"--episodes {episodes} is not allowed; expected an integer >= 1")
    config_file, model_file = run_dir / "config.json", run_dir / "model.zip"
    for f in (config_file, model_file):
        if not f.is_file():
            raise UsageError(f"RUN_DIR {str(run_dir)!r} has no {f.name}; expected a folder written by train.py")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        env_id, algo, env_kwargs = config["env_id"], config["algo"], dict(config.get("env_kwargs") or {})
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"RUN_DIR {str(run_dir)!r}: config.json is unreadable ({exc})") from None
    env = gym.make(gym_id(env_id), **env_kwargs)
    try:
        model = agent_class(algo).load(model_file, device="cpu")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        env.close()
        raise UsageError(f"RUN_DIR {str(run_dir)!r}: model.zip cannot be loaded ({exc})") from None
    masked = callable(getattr(env.unwrapped, "action_masks", None)) and algo == "maskable_ppo"
    records = []
    for k in range(episodes):
        obs, info = env.reset(seed=seed + k)
        total, length, done = 0.0, 0, False
        while not done:
            kwargs = {"action_masks": env.unwrapped.action_masks()} if masked else {}  # type: ignore[attr-defined]
            action, _ = model.predict(obs, deterministic=True, **kwargs)
            obs, reward, terminated, truncated, info = env.step(action.item() if np.ndim(action) == 0 else action)
            total, length, done = total + float(reward), length + 1, terminated or truncated
        record = {"episode": k, "seed": seed + k, "return": total, "length": length,
                  **{key: json_ready(info[key]) for key in OBJECTIVE_KEYS if key in info}}
        records.append(record)
        if verbose:
            shown = ", ".join(f"{key} {_fmt(record[key])}" for key in OBJECTIVE_KEYS if key in record)
            print(f"episode {k} (seed {seed + k}): return {total:.4f} in {length} steps" + (f"; {shown}" if shown else ""))
    env.close()
    if verbose and episodes > 1:
        returns = [r["return"] for r in records]
        print(f"mean return {np.mean(returns):.4f} (std {np.std(returns):.4f}) over {episodes} episodes of {env_id}")
    return records


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
