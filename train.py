#!/usr/bin/env python
"""Train an agent on a quant_envs environment, or compare agents against the non-RL baselines.

    python train.py                                   # a short default search on the default task
    python train.py --env quant_envs/MixedPrecision-v0 --algo maskable_ppo --timesteps 2000 --seed 0 \\
        --env-kwargs budget_fraction=0.25 finetune_steps=20
    python train.py --resume --out runs/my-run        # continue an interrupted run
    python train.py compare --env quant_envs/MixedPrecision-v0 --agents maskable_ppo \\
        --baselines uniform random hawq_v3 --seeds 5 --max-evaluations 200

A run writes into ``--out`` (default ``runs/<env>/<algo>-s<seed>``): ``best_policy.json``,
``evaluations.csv`` (every finished episode), ``summary.png``, ``model.zip``, ``checkpoints/``
(``--resume`` continues from there) and ``logs/part-<k>/`` (SB3's CSV and TensorBoard logs; a new
part per resume, so nothing is overwritten). Every file is written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

DEFAULT_ENV = "quant_envs/MixedPrecision-v0"
MIXED_PRECISION_IDS = ("quant_envs/MixedPrecision-v0", "quant_envs/MixedPrecisionContinuous-v0")
DEFAULT_BASELINES = ("uniform", "random", "greedy_std", "greedy_sensitivity", "hawq_v3", "evolution")


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


# ------------------------------------------------------------------------------------------ helpers
def _env_name(env_id: str) -> str:
    return env_id.split("/")[-1]


def _check_env_id(env_id: str) -> None:
    import gymnasium as gym

    import quant_envs

    if env_id not in gym.registry:
        raise UsageError(f"--env {env_id!r} is not a registered environment; quant_envs ids: {', '.join(sorted(quant_envs.ENV_IDS))}")


def _parse_kwargs(items: list[str] | None, flag: str) -> dict[str, Any]:
    from agents import parse_overrides

    try:
        return parse_overrides(items, flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _make_vec_env(env_id: str, n_envs: int, seed: int, env_kwargs: dict[str, Any]):
    from stable_baselines3.common.env_util import make_vec_env

    try:
        return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--env-kwargs {env_kwargs}: {exc}") from None


def _problem_of(vec_env: Any) -> Any:
    try:
        return vec_env.get_attr("problem")[0]
    except AttributeError:
        return None


# -------------------------------------------------------------------------------------------- train
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

    _check_env_id(env_id)
    if algo not in AGENTS:
        raise UsageError(f"--algo {algo!r} is not allowed; expected one of: {', '.join(AGENTS)}")
    for flag, value, lowest in (("--timesteps", timesteps, 1), ("--seed", seed, 0), ("--n-envs", n_envs, 1),
                                ("--checkpoint-freq", checkpoint_freq, 1),
                                ("--max-evaluations", 1 if max_evaluations is None else max_evaluations, 1)):
        if value < lowest:
            raise UsageError(f"{flag} {value} is not allowed; expected an integer >= {lowest}")
    torch.set_num_threads(1)  # small MLP policies and tiny task networks: threads only add contention
    env_kwargs = dict(env_kwargs or {})
    run_dir = Path(out) if out is not None else _default_run_dir(env_id, algo, seed)
    ckpt_dir = run_dir / "checkpoints"
    start = time.perf_counter()

    vec_env = _make_vec_env(env_id, n_envs, seed, env_kwargs)
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

    problem = _problem_of(vec_env)
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
        _print_train_summary(summary)
    return summary


def _print_train_summary(summary: dict[str, Any]) -> None:
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


# ------------------------------------------------------------------------------------------ compare
def _run_one(kind: str, method: str, seed: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """One (method, seed) of a comparison; a top-level function so worker processes can run it."""
    import gymnasium as gym
    import torch

    import quant_envs  # noqa: F401

    torch.set_num_threads(1)
    start = time.perf_counter()
    if kind == "agent":
        summary = train(cfg["env_id"], method, cfg["timesteps"], seed, {**cfg["env_kwargs"], "share_problem": False},
                        cfg["hyperparams"].get(method), Path(cfg["out"]) / "runs" / f"{method}-s{seed}",
                        checkpoint_freq=cfg["timesteps"], max_evaluations=cfg["max_evaluations"],
                        progress_bar=False, test_best=True, verbose=False)
        best = summary["best"]
        return {"method": method, "kind": kind, "seed": seed, "val_accuracy": best["accuracy"],
                "test_accuracy": summary["best_test_accuracy"], "budget_used": best["budget_used"],
                "reward_evaluations": summary["reward_evaluations"], "wall_time_s": time.perf_counter() - start,
                "policy": json.dumps(best["policy"])}
    from baselines.mixed_precision import solve

    env = gym.make(cfg["env_id"], **{**cfg["env_kwargs"], "share_problem": False})
    result = solve(env, method, max_evaluations=cfg["max_evaluations"], seed=seed)
    test = env.unwrapped.problem.evaluate(result.policy, split="test").accuracy
    env.close()
    return {"method": method, "kind": kind, "seed": seed, "val_accuracy": result.accuracy, "test_accuracy": test,
            "budget_used": result.evaluation.budget_used, "reward_evaluations": result.num_evaluations,
            "wall_time_s": time.perf_counter() - start, "policy": json.dumps([list(p) for p in result.policy])}


def _read_runs(path: Path) -> list[dict[str, Any]]:
    import csv

    if not path.is_file():
        raise UsageError(f"--report-only: {path} does not exist; run the comparison first")
    with open(path, newline="", encoding="utf-8") as f:
        runs = list(csv.DictReader(f))
    for r in runs:
        for key in ("val_accuracy", "test_accuracy", "budget_used", "wall_time_s"):
            r[key] = float(r[key])
        r["seed"], r["reward_evaluations"] = int(r["seed"]), int(r["reward_evaluations"])
    return runs


def compare(
    env_id: str = DEFAULT_ENV,
    agents: list[str] | None = None,
    baselines: list[str] | None = None,
    seeds: int = 5,
    max_evaluations: int = 200,
    timesteps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    hyperparams: dict[str, dict[str, Any]] | None = None,
    out: str | os.PathLike[str] = "results/compare",
    jobs: int = 1,
    report_only: bool = False,
) -> dict[str, Any]:
    """Agents against baselines over ``seeds`` seeds; writes runs.csv, summary.csv, results.md, compare.png.

    Each run searches with the validation accuracy as its reward and reports the test accuracy of
    the best policy it found. ``report_only`` rebuilds the table and figure from ``out/runs.csv``.
    """
    import gymnasium as gym

    from agents import AGENTS
    from agents.reporting import bootstrap_ci, compare_figure, iqm
    from baselines.mixed_precision import METHODS
    from quant_envs._io import (
        atomic_write_csv,
        atomic_write_json,
        atomic_write_text,
        markdown_table,
    )

    _check_env_id(env_id)
    if env_id not in MIXED_PRECISION_IDS:
        raise UsageError(f"compare supports {', '.join(MIXED_PRECISION_IDS)}; for the other problems run "
                         "python -m baselines.<compander|cvt|feel>")
    agents = list(agents if agents is not None else ["maskable_ppo"])
    baselines = list(baselines if baselines is not None else DEFAULT_BASELINES)
    for a in agents:
        if a not in AGENTS:
            raise UsageError(f"--agents {a!r} is not allowed; expected some of: {', '.join(AGENTS)}")
    for b in baselines:
        if b not in METHODS:
            raise UsageError(f"--baselines {b!r} is not allowed; expected some of: {', '.join(METHODS)}")
    if seeds < 1 or max_evaluations < 1 or jobs < 1:
        raise UsageError("--seeds, --max-evaluations and --jobs must be >= 1")
    env_kwargs = dict(env_kwargs or {})
    try:  # build once here: bad --env-kwargs fail now, and the float model is trained before workers start
        probe = gym.make(env_id, **env_kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--env-kwargs {env_kwargs}: {exc}") from None
    steps_per_episode = probe.unwrapped.num_steps
    problem = probe.unwrapped.problem
    probe.close()
    cfg = {"env_id": env_id, "env_kwargs": env_kwargs, "max_evaluations": max_evaluations, "out": str(out),
           "timesteps": timesteps or 20 * max_evaluations * steps_per_episode, "hyperparams": hyperparams or {}}
    work = [("agent", a, s) for s in range(seeds) for a in agents] + [("baseline", b, s) for s in range(seeds) for b in baselines]
    start = time.perf_counter()
    out = Path(out)
    if report_only:
        if (out / "compare.json").is_file():  # the settings the runs were made with
            max_evaluations = json.loads((out / "compare.json").read_text())["max_evaluations"]
        runs = _read_runs(out / "runs.csv")
        methods = list(dict.fromkeys(r["method"] for r in runs))
        seeds = len({r["seed"] for r in runs})
    elif jobs == 1:
        runs = []
        for kind, method, seed in work:
            runs.append(_run_one(kind, method, seed, cfg))
            r = runs[-1]
            print(f"{method:>20} seed {seed}: test {r['test_accuracy']:.4f} (val {r['val_accuracy']:.4f}), "
                  f"{r['reward_evaluations']} evaluations, {r['wall_time_s']:.1f} s", flush=True)
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            runs = list(pool.map(_run_one, *zip(*work), [cfg] * len(work)))
    if not report_only:
        methods = agents + baselines
        atomic_write_csv(out / "runs.csv", runs)
        atomic_write_json(out / "compare.json", {**cfg, "agents": agents, "baselines": baselines, "seeds": seeds})
    rows = []
    for m in methods:
        mine = [r for r in runs if r["method"] == m]
        test = [r["test_accuracy"] for r in mine]
        lo, hi = bootstrap_ci(test)
        rows.append({"method": m, "kind": mine[0]["kind"], "seeds": len(mine), "test_mean": float(sum(test) / len(test)),
                     "test_iqm": iqm(test), "ci_low": lo, "ci_high": hi,
                     "val_mean": sum(r["val_accuracy"] for r in mine) / len(mine),
                     "evaluations": sum(r["reward_evaluations"] for r in mine) / len(mine),
                     "wall_time_s": sum(r["wall_time_s"] for r in mine) / len(mine)})
    atomic_write_csv(out / "summary.csv", rows)
    columns = [("method", "method"), ("kind", "kind"), ("val_mean", "val. acc. (searched) mean"),
               ("test_mean", "test acc. mean"), ("test_iqm", "test acc. IQM"), ("ci_low", "95% CI low"),
               ("ci_high", "95% CI high"), ("evaluations", "reward evaluations"), ("wall_time_s", "wall time [s]")]
    shown = [{**r, "evaluations": f"{r['evaluations']:.1f}", "wall_time_s": f"{r['wall_time_s']:.1f}"} for r in rows]
    table = markdown_table(shown, columns)
    header = (f"{env_id}, {problem.task.name} on {problem.hardware}, {problem.budget_metric} budget "
              f"{problem.budget / problem.reference_cost[problem.budget_metric]:.3f} of all-8-bit, "
              f"finetune_steps={problem.finetune_steps}; float accuracy val {problem.float_accuracy('val'):.4f}, "
              f"test {problem.float_accuracy('test'):.4f}; {seeds} seeds, <= {max_evaluations} reward evaluations each. "
              "Accuracies are fractions; each run searches on the validation split and reports the test "
              "accuracy of its best policy; CI: 95% percentile bootstrap of the mean over seeds.\n\n")
    atomic_write_text(out / "results.md", header + table)
    compare_figure(runs, methods, out / "compare.png")
    print(header + table)
    print(f"{len(runs)} runs{'' if report_only else f' in {time.perf_counter() - start:.0f} s'}; results in {out}/: results.md, summary.csv, runs.csv, compare.png")
    return {"runs": runs, "summary": rows, "table": table}


# ---------------------------------------------------------------------------------------------- CLI
def _train_parser() -> argparse.ArgumentParser:
    from agents import AGENTS

    p = argparse.ArgumentParser(prog="train.py", description="Train an agent on a quant_envs environment "
                                "(or: train.py compare --help).")
    # None = not given: a new run takes TRAIN_DEFAULTS, --resume takes the run's own config.json
    p.add_argument("--env", help=f"environment id (default {DEFAULT_ENV})")
    p.add_argument("--algo", choices=list(AGENTS), help="agent (default maskable_ppo)")
    p.add_argument("--timesteps", type=int, help="total environment steps (default 1000)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY=VALUE", help="environment arguments, values as YAML")
    p.add_argument("--hyperparams", nargs="*", metavar="KEY=VALUE", help="override the YAML hyperparameters")
    p.add_argument("--out", help="run directory (default runs/<env>/<algo>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    p.add_argument("--checkpoint-freq", type=int, default=500, help="steps between checkpoints (default 500)")
    p.add_argument("--max-evaluations", type=int, help="stop after this many reward evaluations")
    p.add_argument("--n-envs", type=int, default=1, help="parallel environment copies (one process)")
    p.add_argument("--no-progress-bar", action="store_true")
    return p


def _compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py compare", description="Agents against non-RL baselines over seeds.")
    p.add_argument("--env", default=DEFAULT_ENV)
    p.add_argument("--agents", nargs="*", default=["maskable_ppo"])
    p.add_argument("--baselines", nargs="*", default=list(DEFAULT_BASELINES))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--max-evaluations", type=int, default=200, help="reward evaluations per run (default 200)")
    p.add_argument("--timesteps", type=int, help="cap on agent steps (default: 20 x evaluations x episode length)")
    p.add_argument("--env-kwargs", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--hyperparams", nargs="*", metavar="ALGO.KEY=VALUE", help="e.g. maskable_ppo.learning_rate=1e-3")
    p.add_argument("--out", default="results/compare")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--report-only", action="store_true", help="rebuild the table and figure from OUT/runs.csv")
    return p


TRAIN_DEFAULTS: dict[str, Any] = {"env_id": DEFAULT_ENV, "algo": "maskable_ppo", "timesteps": 1000, "seed": 0,
                                  "env_kwargs": {}, "hyperparams": {}, "max_evaluations": None}
_FLAGS = {"env_id": "--env", "algo": "--algo", "seed": "--seed", "env_kwargs": "--env-kwargs",
          "hyperparams": "--hyperparams", "max_evaluations": "--max-evaluations"}


def _run_config(given: dict[str, Any], out: str | None, resume: bool) -> dict[str, Any]:
    """The run's settings: what was given, else (with --resume) the run's config.json, else defaults.

    Resuming with a setting that differs from the one the run was made with is an error: the
    checkpoint would continue on another problem.
    """
    config = {k: (v if v is not None else TRAIN_DEFAULTS[k]) for k, v in given.items()}
    if not resume:
        return config
    run_dir = Path(out) if out is not None else _default_run_dir(config["env_id"], config["algo"], config["seed"])
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


def _default_run_dir(env_id: str, algo: str, seed: int) -> Path:
    return Path("runs") / _env_name(env_id) / f"{algo}-s{seed}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "compare":
            a = _compare_parser().parse_args(argv[1:])
            per_algo: dict[str, dict[str, Any]] = {}
            for key, value in _parse_kwargs(a.hyperparams, "--hyperparams").items():
                algo, dot, name = key.partition(".")
                if not dot:
                    raise UsageError(f"--hyperparams {key!r} is not allowed; expected ALGO.KEY=VALUE")
                per_algo.setdefault(algo, {})[name] = value
            compare(a.env, a.agents, a.baselines, a.seeds, a.max_evaluations, a.timesteps,
                    _parse_kwargs(a.env_kwargs, "--env-kwargs"), per_algo, a.out, a.jobs, a.report_only)
            return 0
        a = _train_parser().parse_args(argv)
        given = {"env_id": a.env, "algo": a.algo, "timesteps": a.timesteps, "seed": a.seed,
                 "env_kwargs": _parse_kwargs(a.env_kwargs, "--env-kwargs") if a.env_kwargs is not None else None,
                 "hyperparams": _parse_kwargs(a.hyperparams, "--hyperparams") if a.hyperparams is not None else None,
                 "max_evaluations": a.max_evaluations}
        config = _run_config(given, a.out, a.resume)
        train(**config, out=a.out, resume=a.resume, checkpoint_freq=a.checkpoint_freq, n_envs=a.n_envs,
              progress_bar=not a.no_progress_bar)
        return 0
    except UsageError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
