"""Learnability of the CVT environments: random policy, PPO at a fixed budget, Lloyd's rule, a solver.

    python benchmarks/learnability_cvt.py            # CVT1D-v1 and CVT2D-v1, k = 8
    python benchmarks/learnability_cvt.py --quick    # a smaller PPO budget (smoke run)

:func:`cvt_learnability_rows` returns one row per (environment, policy) on held-out seeds (the
episode seeds 10000, 10001, ... are never used in training, whose vectorised environments are
seeded 0 ... n_envs - 1 and then continue their own streams):

* ``random``: uniform random actions;
* ``ppo``: PPO with :class:`agents.cvt_policy.PerGeneratorPolicy` and the YAML hyperparameters of
  ``agents/hyperparams/ppo.yml``, trained for ``timesteps`` steps, acting deterministically;
* ``lloyd``: Lloyd's rule written as a policy (action = centroid offset / action_scale), within
  the same step budget as the agent;
* ``solver``: :func:`baselines.cvt.solve` (L-BFGS, relative gradient 1e-8) from the episode's
  starting generators, no step budget.

``objective`` is E / E* at the end of the episode (E* the environment's reference CVT energy),
averaged over the evaluation episodes; targets: PPO <= 1.05 on CVT1D, <= 1.10 on
CVT2D. The rows are plain dicts so that ``benchmarks/bench_learnability.py`` can merge them into
its table.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

import quant_envs  # noqa: F401  (registers the ids)

ENV_IDS = ("quant_envs/CVT1D-v1", "quant_envs/CVT2D-v1")
TARGETS = {"quant_envs/CVT1D-v1": 1.05, "quant_envs/CVT2D-v1": 1.10}
DEFAULT_TIMESTEPS = {"quant_envs/CVT1D-v1": 50_000, "quant_envs/CVT2D-v1": 40_000}
EVAL_SEED0 = 10_000


def _lloyd_action(env: gym.Env, obs: np.ndarray) -> np.ndarray:
    d = env.unwrapped._dim
    return (obs[:, d : 2 * d] / env.unwrapped.action_scale).astype(np.float32)


def _episode(env: gym.Env, seed: int, act) -> dict[str, float]:
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        total += reward
        steps += 1
        done = terminated or truncated
    return {"objective": info["energy_ratio_reference"], "return": total, "steps": steps}


def _solver_episode(env: gym.Env, seed: int) -> dict[str, float]:
    from baselines.cvt import solve

    env.reset(seed=seed)
    raw = env.unwrapped
    res = solve(raw.problem, "lbfgs", tol=1e-8, z0=raw.generators)
    return {"objective": res.energy / raw.reference_energy, "return": float(np.log(raw._e0 / res.energy)),
            "steps": res.iterations}


def _row(env_id: str, policy: str, episodes: list[dict[str, float]], **extra: Any) -> dict[str, Any]:
    obj = np.array([e["objective"] for e in episodes])
    return {"env_id": env_id, "policy": policy, "objective": float(obj.mean()), "objective_max": float(obj.max()),
            "objective_sd": float(obj.std()),
            "objective_units": "E / E*", "return": float(np.mean([e["return"] for e in episodes])),
            "steps": float(np.mean([e["steps"] for e in episodes])), "episodes": len(episodes),
            "target": TARGETS.get(env_id), **extra}


def train_ppo(env_id: str, timesteps: int, seed: int = 0, n_envs: int = 4, env_kwargs: dict | None = None):
    """PPO with the YAML hyperparameters of ``env_id`` (the per-generator policy for the v1 ids)."""
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    from agents import make_agent

    torch.set_num_threads(1)
    venv = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs or {})
    model = make_agent("ppo", venv, env_id=env_id, seed=seed, verbose=0)
    model.learn(timesteps)
    venv.close()
    return model


def cvt_learnability_rows(
    env_ids: Sequence[str] = ENV_IDS,
    timesteps: int | dict[str, int] | None = None,
    n_eval: int = 10,
    seed: int = 0,
    env_kwargs: dict | None = None,
    log=print,
) -> list[dict[str, Any]]:
    """Rows {env_id, policy, objective (E / E*), return, steps, ...} on held-out seeds.

    ``timesteps``: PPO budget per environment (default :data:`DEFAULT_TIMESTEPS`); 0 skips PPO.
    """
    rows: list[dict[str, Any]] = []
    seeds = [EVAL_SEED0 + i for i in range(n_eval)]
    for env_id in env_ids:
        env = gym.make(env_id, **(env_kwargs or {}))
        budget = timesteps.get(env_id, 0) if isinstance(timesteps, dict) else timesteps
        if budget is None:
            budget = DEFAULT_TIMESTEPS.get(env_id, 40_000)
        rows.append(_row(env_id, "random", [_episode(env, s, lambda o, e=env: e.action_space.sample()) for s in seeds]))
        if budget > 0:
            start = time.perf_counter()
            model = train_ppo(env_id, budget, seed=seed, env_kwargs=env_kwargs)
            train_s = time.perf_counter() - start
            eps = [_episode(env, s, lambda o, m=model: m.predict(o, deterministic=True)[0]) for s in seeds]
            rows.append(_row(env_id, "ppo", eps, timesteps=budget, train_wall_s=train_s))
        rows.append(_row(env_id, "lloyd", [_episode(env, s, lambda o, e=env: _lloyd_action(e, o)) for s in seeds]))
        rows.append(_row(env_id, "solver", [_solver_episode(env, s) for s in seeds], method="lbfgs"))
        for r in rows[-4:]:
            if r["env_id"] == env_id:
                log(f"  {env_id} {r['policy']:6s} E/E* = {r['objective']:.4f} (max {r['objective_max']:.4f}) "
                    f"return {r['return']:.3f} steps {r['steps']:.1f}")
        env.close()
    return rows


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| environment | policy | E / E* (mean) | E / E* (max) | return | steps | target (PPO) | met |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        target = r.get("target")
        met = "-" if r["policy"] != "ppo" or target is None else ("yes" if r["objective"] <= target else "no")
        lines.append(f"| {r['env_id']} | {r['policy']} | {r['objective']:.4f} | {r['objective_max']:.4f} | "
                     f"{r['return']:.3f} | {r['steps']:.1f} | {'' if target is None else f'<= {target:g}'} | {met} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="PPO budget 10000 steps (smoke run)")
    parser.add_argument("--timesteps", type=int, default=None, help="PPO budget per environment")
    parser.add_argument("--episodes", type=int, default=10, help="held-out evaluation episodes")
    args = parser.parse_args(argv)
    if args.timesteps is not None and args.timesteps < 0:
        parser.error(f"--timesteps={args.timesteps} is not allowed; expected an integer >= 0")
    if args.episodes < 1:
        parser.error(f"--episodes={args.episodes} is not allowed; expected an integer >= 1")
    budget = 10_000 if args.quick else args.timesteps
    rows = cvt_learnability_rows(timesteps=budget, n_eval=args.episodes)
    print()
    print(format_rows(rows))
    return 0


if __name__ == "__main__":
    from _timing import run_timed

    run_timed(main)
