"""Train one agent on one environment: checkpoints, ``--resume``, episode records, a summary.

``train`` is what ``python train.py`` runs; every file it writes is written atomically.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from agents.runs import (
    DEFAULT_ENV,
    UsageError,
    check_env_id,
    default_run_dir,
    make_vec_env,
    problem_of,
)


def train(
    env_id: str = DEFAULT_ENV,
    algo: str = "maskable_ppo",
    timesteps: int = 1000,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    hyperparams: dict[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    checkpoint_freq: int = 500,
    max_evaluations: int | None = None,
    n_envs: int = 1,
    progress_bar: bool = True,
    test_best: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train ``algo`` on ``env_id``; return a summary (best episode, paths, wall time)."""
    import torch
    from stable_baselines3.common.logger import configure

    from agents import AGENTS, agent_class, make_agent
    from agents.callbacks import AtomicCheckpoint, EpisodeRecorder, load_checkpoint
    from agents.reporting import run_figure
    from quant_envs._io import atomic_path, atomic_write_json

    check_env_id(env_id)
    if algo not in AGENTS:
        raise UsageError(f"--algo {algo!r} is not allowed; expected one of: {', '.join(AGENTS)}")
    for flag, value, lowest in (("--timesteps", timesteps, 1), ("--seed", seed, 0), ("--n-envs", n_envs, 1),
                                ("--checkpoint-freq", checkpoint_freq, 1),
                                ("--max-evaluations", 1 if max_evaluations is None else max_evaluations, 1)):
        if value < lowest:
            raise UsageError(f"{flag} {value} is not allowed; expected an integer >= {lowest}")
    torch.set_num_threads(1)  # small MLP policies and tiny task networks: threads only add contention
    env_kwargs = dict(env_kwargs or {})
    run_dir = Path(out) if out is not None else default_run_dir(env_id, algo, seed)
    ckpt_dir = run_dir / "checkpoints"
    start = time.perf_counter()

    vec_env = make_vec_env(env_id, n_envs, seed, env_kwargs)
    recorder = EpisodeRecorder(max_evaluations=max_evaluations)
    resumed_from = 0
    state_file = ckpt_dir / "state.json"
    if resume and state_file.exists():
        try:
            model, state = load_checkpoint(ckpt_dir, agent_class(algo), vec_env)
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"--resume: cannot load the checkpoint in {ckpt_dir}: {exc}") from None
        recorder.load_state(state)
        resumed_from = int(model.num_timesteps)
        if verbose:
            print(f"resuming {run_dir} from timestep {resumed_from}")
    else:
        if resume and verbose:
            print(f"--resume: no checkpoint in {ckpt_dir}; starting a new run")
        atomic_write_json(run_dir / "config.json", {
            "env_id": env_id, "algo": algo, "timesteps": timesteps, "seed": seed, "env_kwargs": env_kwargs,
            "hyperparams": hyperparams or {}, "max_evaluations": max_evaluations})
        try:
            model = make_agent(algo, vec_env, env_id=env_id, seed=seed, verbose=0, **(hyperparams or {}))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    part = len(list((run_dir / "logs").glob("part-*"))) if (run_dir / "logs").exists() else 0
    model.set_logger(configure(str(run_dir / "logs" / f"part-{part}"), ["csv", "tensorboard"]))

    def write_outputs() -> None:
        recorder.write_csv(run_dir / "evaluations.csv")

    checkpoint = AtomicCheckpoint(ckpt_dir, checkpoint_freq, recorder, on_save=write_outputs)
    remaining = timesteps - resumed_from
    interrupted = False
    if remaining > 0 and (max_evaluations is None or recorder.num_evaluations < max_evaluations):
        try:
            model.learn(remaining, callback=[recorder, checkpoint], reset_num_timesteps=resumed_from == 0,
                        progress_bar=progress_bar)
        except KeyboardInterrupt:
            interrupted = True
    checkpoint.init_callback(model)
    checkpoint.save()  # the final state is also a checkpoint: --resume after the end does nothing more
    with atomic_path(run_dir / "model.zip") as tmp:
        model.save(tmp)
    write_outputs()

    problem = problem_of(vec_env)
    best = recorder.best
    summary: dict[str, Any] = {
        "env_id": env_id, "algo": algo, "seed": seed, "timesteps": int(model.num_timesteps),
        "episodes": len(recorder.records), "reward_evaluations": recorder.num_evaluations,
        "wall_time_s": time.perf_counter() - start, "resumed_from": resumed_from,
        "interrupted": interrupted, "env_kwargs": env_kwargs, "best": best, "run_dir": str(run_dir),
    }
    if problem is not None and best is not None and "policy" in best:
        if test_best:
            summary["best_test_accuracy"] = problem.evaluate(best["policy"], split="test").accuracy
        budget_fraction = problem.budget / problem.reference_cost[problem.budget_metric]
        run_figure(recorder.records, best, budget_fraction, [layer.name for layer in problem.layers],
                   run_dir / "summary.png", problem.budget_metric)
    else:
        run_figure(recorder.records, best, None, None, run_dir / "summary.png")
    atomic_write_json(run_dir / "best_policy.json", summary)
    vec_env.close()
    if verbose:
        print_train_summary(summary)
    return summary


def print_train_summary(summary: dict[str, Any]) -> None:
    best = summary["best"] or {}
    run_dir = summary["run_dir"]
    print(f"{summary['algo']} on {summary['env_id']}: {summary['timesteps']} timesteps, {summary['episodes']} episodes, "
          f"{summary['reward_evaluations']} reward evaluations, {summary['wall_time_s']:.1f} s"
          + ("  (interrupted: continue with --resume)" if summary["interrupted"] else ""))
    if "policy" in best:
        print(f"best policy (validation accuracy {best['accuracy']:.4f}, float {best.get('float_accuracy', float('nan')):.4f}, "
              f"{best.get('budget_used', float('nan')):.3f} of the budget): {best['policy']}")
        if "best_test_accuracy" in summary:
            print(f"its test accuracy: {summary['best_test_accuracy']:.4f}")
    elif best:
        print(f"best episode return: {best['return']:.4f}")
    print(f"results in {run_dir}/: best_policy.json, evaluations.csv, summary.png, model.zip, checkpoints/, logs/")


TRAIN_DEFAULTS: dict[str, Any] = {"env_id": DEFAULT_ENV, "algo": "maskable_ppo", "timesteps": 1000, "seed": 0,
                                  "env_kwargs": {}, "hyperparams": {}, "max_evaluations": None}
_FLAGS = {"env_id": "--env", "algo": "--algo", "seed": "--seed", "env_kwargs": "--env-kwargs",
          "hyperparams": "--hyperparams", "max_evaluations": "--max-evaluations"}


def run_config(given: dict[str, Any], out: str | None, resume: bool) -> dict[str, Any]:
    """The run's settings: what was given, else (with --resume) the run's config.json, else defaults.

    Resuming with a setting that differs from the one the run was made with is an error: the
    checkpoint would continue on another problem.
    """
    config = {k: (v if v is not None else TRAIN_DEFAULTS[k]) for k, v in given.items()}
    if not resume:
        return config
    run_dir = Path(out) if out is not None else default_run_dir(config["env_id"], config["algo"], config["seed"])
    saved_file = run_dir / "config.json"
    if not saved_file.is_file():
        return config
    saved = json.loads(saved_file.read_text())
    for key, flag in _FLAGS.items():
        if given[key] is not None and given[key] != saved.get(key):
            raise UsageError(f"--resume: {flag} {given[key]!r} differs from the run's {saved.get(key)!r} "
                             f"({saved_file}); pass the same value or leave it out")
        config[key] = saved.get(key, config[key])
    if given["timesteps"] is None:  # a larger --timesteps extends the run
        config["timesteps"] = saved["timesteps"]
    return config

