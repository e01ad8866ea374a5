"""Agents against the non-RL baselines over seeds: runs, summary statistics, a table and a figure.

``compare`` is what ``python train.py compare`` runs; every file it writes is written atomically.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from agents.runs import DEFAULT_ENV, UsageError, check_env_id
from agents.training import train

MIXED_PRECISION_IDS = ("quant_envs/MixedPrecision-v0", "quant_envs/MixedPrecisionContinuous-v0")
DEFAULT_BASELINES = ("uniform", "random", "greedy_std", "greedy_sensitivity", "hawq_v3", "evolution")


def run_one(kind: str, method: str, seed: int, cfg: dict[str, Any]) -> dict[str, Any]:
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


def read_runs(path: Path) -> list[dict[str, Any]]:
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

    check_env_id(env_id)
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
        runs = read_runs(out / "runs.csv")
        methods = list(dict.fromkeys(r["method"] for r in runs))
        seeds = len({r["seed"] for r in runs})
    elif jobs == 1:
        runs = []
        for kind, method, seed in work:
            runs.append(run_one(kind, method, seed, cfg))
            r = runs[-1]
            print(f"{method:>20} seed {seed}: test {r['test_accuracy']:.4f} (val {r['val_accuracy']:.4f}), "
                  f"{r['reward_evaluations']} evaluations, {r['wall_time_s']:.1f} s", flush=True)
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            runs = list(pool.map(run_one, *zip(*work), [cfg] * len(work)))
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

