"""Agents against the non-RL baselines over seeds: runs, summary statistics, a table and a figure.

``compare`` is what ``python train.py compare`` runs; every file it writes is written atomically.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import quant_envs  # noqa: F401
from agents import AGENTS
from agents.ray_backend import run_trials

# RUN_FIELDS (the columns of runs.csv) and the record type live in agents.records; importable from here too
from agents.records import RUN_FIELDS, ComparisonRun, RecordError, as_run, check_number_field
from agents.regret import add_agent_runs
from agents.reporting import compare_figure, iqm, iqm_ci, probability_of_improvement
from agents.runs import UsageError, check_env_id
from agents.training import train
from baselines.mixed_precision import METHODS, solve
from baselines.mixed_precision.regret import TABLE_METHODS, regret_study
from quant_envs.atomic_io import atomic_write_csv, atomic_write_json, atomic_write_text
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.regret import plot_regret
from quant_envs.mixed_precision.unwrap import mixed_precision_env
from quant_envs.text_tables import markdown_table

MIXED_PRECISION_IDS = ("quant_envs/MixedPrecision-v1", "quant_envs/MixedPrecisionContinuous-v1",
                       "quant_envs/MixedPrecision-v0", "quant_envs/MixedPrecisionContinuous-v0")
#: The environment ``compare`` uses by default: the core benchmark (MNIST-1D, issue 11).
DEFAULT_COMPARE_ENV = "quant_envs/MixedPrecision-v1"
DEFAULT_BASELINES = ("uniform", "random", "greedy_std", "greedy_sensitivity", "hawq_v3", "evolution")
#: The table benchmark: ``compare`` on it is a regret study against the table's exact optimum.
TABLE_ENV_ID = "quant_envs/MixedPrecisionTable-v0"
#: Where the runs of a comparison execute (see ``compare``'s ``backend``).
BACKENDS = ("local", "ray")
#: Retraining seeds of the final evaluation: the same for every method and run.
FINAL_SEEDS = (0, 1, 2)


def _search(kind: str, method: str, seed: int, cfg: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """Run one search; return (result fields, the best policy, the problem it was searched on)."""
    import gymnasium as gym

    if kind == "agent":
        summary = train(cfg["env_id"], method, cfg["timesteps"], seed, {**cfg["env_kwargs"], "share_problem": False},
                        cfg["hyperparams"].get(method), Path(cfg["out"]) / "runs" / f"{method}-s{seed}",
                        checkpoint_freq=cfg["timesteps"], max_evaluations=cfg["max_evaluations"],
                        progress_bar=False, test_best=True, verbose=False)
        best = summary["best"]
        env = gym.make(cfg["env_id"], **cfg["env_kwargs"])  # shared problem: the float model is loaded once
        fields = {"val_accuracy": best["accuracy"], "test_accuracy": summary["best_test_accuracy"],
                  "budget_used": best["budget_used"], "reward_evaluations": summary["reward_evaluations"]}
        return fields, best["policy"], mixed_precision_env(env).problem

    env = gym.make(cfg["env_id"], **{**cfg["env_kwargs"], "share_problem": False})
    result = solve(env, method, max_evaluations=cfg["max_evaluations"], seed=seed)
    problem = mixed_precision_env(env).problem
    fields = {"val_accuracy": result.accuracy, "test_accuracy": problem.evaluate(result.policy, split="test").accuracy,
              "budget_used": result.evaluation.budget_used, "reward_evaluations": result.num_evaluations}
    return fields, [list(p) for p in result.policy], problem


def run_one(kind: str, method: str, seed: int, cfg: dict[str, Any]) -> ComparisonRun:
    """One (method, seed) of a comparison, searched then finally evaluated; a failure is a record, not a raise.

    A top-level function so worker processes can run it. The searched policy is retrained for
    ``final_finetune_steps`` under each of :data:`FINAL_SEEDS` and scored on the test split
    (``MixedPrecisionProblem.final_evaluation``); ``final_test_accuracy`` is their mean.
    """
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()

    def record(**outcome: Any) -> ComparisonRun:  # from_dict: numpy numbers and lists become plain types
        return ComparisonRun.from_dict({"method": method, "kind": kind, "seed": seed, **outcome,
                                        "wall_time_s": time.perf_counter() - start}, f"run {method} seed {seed}")

    try:
        fields, policy, problem = _search(kind, method, seed, cfg)
        steps = problem.task.final_finetune_steps if cfg.get("final_finetune_steps") is None else cfg["final_finetune_steps"]
        finals = problem.final_evaluation(policy, steps, seeds=FINAL_SEEDS)
        return record(**fields, status="ok", final_test_accuracy=float(np.mean(finals)),
                      final_test_accuracies=[round(a, 6) for a in finals], final_finetune_steps=steps, policy=policy)
    except Exception as exc:  # reported in runs.csv and the table; the other runs go on
        return record(status="failed", error=f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500])


def read_runs(path: Path, missing_ok: bool = False) -> list[ComparisonRun]:
    """The runs of a runs.csv (this or an earlier version's); a malformed row is a UsageError naming its line."""
    import csv

    if not path.is_file():
        if missing_ok:
            return []
        raise UsageError(f"--report-only: {path} does not exist; run the comparison first")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        try:
            return [ComparisonRun.from_row(row, f"{path} line {reader.line_num}") for row in reader]
        except RecordError as exc:
            raise UsageError(str(exc)) from None


def summarize(runs: Sequence[ComparisonRun | Mapping[str, Any]], methods: list[str], baselines: list[str],
              value: str = "final_test_accuracy") -> list[dict[str, Any]]:
    """Per method: IQM with the 95% bootstrap CI of the IQM, mean, probabilities of improvement
    over uniform and over the best baseline (by IQM, other than the method itself), evaluations.

    ``value`` names the score (a number column of runs.csv); ``runs`` may also be dicts of run values.
    """
    check_number_field(value, "value")
    records = [as_run(r) for r in runs]
    ok = {m: [r for r in records if r.method == m and r.ok] for m in methods}
    scores: dict[str, list[float]] = {m: [getattr(r, value) for r in ok[m]] for m in methods}
    ranked = sorted((b for b in baselines if scores.get(b)), key=lambda b: iqm(scores[b]), reverse=True)
    rows = []
    for m in methods:
        x = scores[m]
        failed = sum(r.method == m and not r.ok for r in records)
        row: dict[str, Any] = {"method": m, "kind": next((r.kind for r in records if r.method == m), ""),
                               "runs": len(x), "failed": failed}
        if x:
            lo, hi = iqm_ci(x)
            best = next((b for b in ranked if b != m), None)
            row.update({
                "iqm": iqm(x), "ci_low": lo, "ci_high": hi, "mean": float(np.mean(x)),
                "val_mean": float(np.mean([r.val_accuracy for r in ok[m]])),
                "p_over_uniform": probability_of_improvement(x, scores["uniform"])
                if m != "uniform" and scores.get("uniform") else float("nan"),
                "best_baseline": best or "",
                "p_over_best_baseline": probability_of_improvement(x, scores[best]) if best else float("nan"),
                "evaluations": float(np.mean([r.reward_evaluations or 0 for r in ok[m]])),
                "wall_time_s": float(np.mean([r.wall_time_s for r in ok[m]])),
            })
        rows.append(row)
    return rows


def compare(
    env_id: str = DEFAULT_COMPARE_ENV,
    agents: list[str] | None = None,
    baselines: list[str] | None = None,
    seeds: int | None = None,
    max_evaluations: int = 200,
    timesteps: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    hyperparams: dict[str, dict[str, Any]] | None = None,
    out: str | os.PathLike[str] = "results/compare",
    jobs: int = 1,
    report_only: bool = False,
    resume: bool = False,
    final_finetune_steps: int | None = None,
    backend: str = "local",
) -> dict[str, Any]:
    """Agents against baselines over ``seeds`` seeds; writes runs.csv, summary.csv, results.md, compare.png.

    Each run searches with the validation accuracy as its reward; its best policy is then retrained
    for ``final_finetune_steps`` (default: the task's) under 3 seeds and scored on the test split.
    runs.csv is rewritten (atomically) as each run finishes; a failed run is a row with its error.
    ``resume`` keeps the finished runs of ``out/runs.csv`` (same settings) and runs only the rest;
    ``report_only`` rebuilds the table and figure from ``out/runs.csv``.

    ``backend``: "local" (this machine: ``jobs`` worker processes) or "ray" (Ray Tune, one trial per
    run, on the cluster ``RAY_ADDRESS`` names or a local Ray instance with ``jobs`` CPUs; needs the
    ``ray`` extra). Both write the same runs.csv and table.
    """
    import gymnasium as gym

    check_env_id(env_id)
    if env_id == TABLE_ENV_ID:
        if report_only or resume or backend != "local":
            raise UsageError(f"--report-only, --resume and --backend ray are for the live environments; a regret "
                             f"study on {TABLE_ENV_ID} takes seconds to rerun")
        return compare_table(env_kwargs or {}, agents, baselines, 20 if seeds is None else seeds, max_evaluations,
                             out, hyperparams)
    seeds = 10 if seeds is None else seeds
    if env_id not in MIXED_PRECISION_IDS:
        raise UsageError(f"compare supports {', '.join(MIXED_PRECISION_IDS)}; for the other problems run "
                         "python -m baselines.<compander|cvt|feel>")
    agents, baselines = _checked_methods(agents, baselines, DEFAULT_BASELINES, METHODS)
    if seeds < 1 or max_evaluations < 1 or jobs < 1:
        raise UsageError("--seeds, --max-evaluations and --jobs must be >= 1")
    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend!r} is not allowed; expected one of: {', '.join(BACKENDS)}")
    if backend == "ray" and not report_only:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError("--backend ray needs the ray extra: pip install -e \".[ray]\" (in its own virtual "
                             "environment: RLlib pins its own gymnasium)") from None
    if final_finetune_steps is not None and (isinstance(final_finetune_steps, bool) or final_finetune_steps < 0):
        raise UsageError(f"--final-finetune-steps {final_finetune_steps!r} is not allowed; expected an integer >= 0")
    env_kwargs = dict(env_kwargs or {})
    try:  # build once here: bad --env-kwargs fail now, and the float model is trained before workers start
        probe = gym.make(env_id, **env_kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--env-kwargs {env_kwargs}: {exc}") from None
    steps_per_episode = mixed_precision_env(probe).num_steps
    problem = mixed_precision_env(probe).problem
    probe.close()
    cfg = {"env_id": env_id, "env_kwargs": env_kwargs, "max_evaluations": max_evaluations, "out": str(out),
           "timesteps": timesteps or 20 * max_evaluations * steps_per_episode, "hyperparams": hyperparams or {},
           "final_finetune_steps": final_finetune_steps}
    final_steps = problem.task.final_finetune_steps if final_finetune_steps is None else final_finetune_steps
    # seed-major: an interrupted comparison has every method on its first seeds (see --resume)
    work = [(kind, m, s) for s in range(seeds) for kind, names in (("agent", agents), ("baseline", baselines))
            for m in names]
    start = time.perf_counter()
    out = Path(out)
    methods = agents + baselines
    runs: list[ComparisonRun] = []
    if report_only:
        if (out / "compare.json").is_file():  # the settings the runs were made with
            saved = json.loads((out / "compare.json").read_text())
            max_evaluations = saved["max_evaluations"]
            final_steps = saved.get("final_steps", final_steps)
            baselines = saved.get("baselines", baselines)
        runs = read_runs(out / "runs.csv")
        methods = list(dict.fromkeys(r.method for r in runs))
        baselines = [m for m in methods if m in baselines or any(r.kind == "baseline" for r in runs if r.method == m)]
        seeds = len({r.seed for r in runs})
    else:
        settings = {**cfg, "agents": agents, "baselines": baselines, "seeds": seeds, "final_steps": final_steps,
                    "final_seeds": list(FINAL_SEEDS)}
        if resume:
            if (out / "compare.json").is_file():
                saved = json.loads((out / "compare.json").read_text())
                keys = ("env_id", "env_kwargs", "max_evaluations", "timesteps", "hyperparams", "final_steps")
                changed = [k for k in keys if saved.get(k) != json.loads(json.dumps(settings[k]))]
                if changed:
                    raise UsageError(f"--resume: {out} was run with other settings ({', '.join(changed)}); "
                                     "use another --out or the same settings")
            runs = [r for r in read_runs(out / "runs.csv", missing_ok=True) if r.ok]
            done = {(r.method, r.seed) for r in runs}
            work = [w for w in work if (w[1], w[2]) not in done]
            print(f"--resume: {len(done)} finished runs kept, {len(work)} to run", flush=True)
        atomic_write_json(out / "compare.json", settings)

        def finished(record: ComparisonRun | Mapping[str, Any]) -> None:
            r = as_run(record)  # the Ray backend hands back the record's JSON form
            runs.append(r)
            atomic_write_csv(out / "runs.csv", [run.to_row() for run in runs], RUN_FIELDS)
            if r.ok:
                print(f"{r.method:>20} seed {r.seed}: final test {r.final_test_accuracy:.4f} "
                      f"(searched val {r.val_accuracy:.4f}), {r.reward_evaluations} evaluations, "
                      f"{r.wall_time_s:.1f} s", flush=True)
            else:
                print(f"{r.method:>20} seed {r.seed}: FAILED: {r.error}", flush=True)

        if backend == "ray":
            run_trials(run_one, [{"kind": k, "method": m, "seed": s, "cfg": cfg} for k, m, s in work], out / "ray",
                       num_cpus=jobs, on_record=finished)
        elif jobs == 1:
            for kind, method, seed in work:
                finished(run_one(kind, method, seed, cfg))
        else:
            import multiprocessing as mp
            from concurrent.futures import as_completed

            with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(run_one, kind, method, seed, cfg) for kind, method, seed in work]
                for future in as_completed(futures):
                    finished(future.result())
        order = {m: i for i, m in enumerate(methods)}
        runs.sort(key=lambda r: (order.get(r.method, len(order)), r.seed))
        atomic_write_csv(out / "runs.csv", [r.to_row() for r in runs], RUN_FIELDS)
    rows = summarize(runs, methods, baselines)
    atomic_write_csv(out / "summary.csv", rows, ["method", "kind", "runs", "failed", "iqm", "ci_low", "ci_high", "mean",
                                                 "val_mean", "p_over_uniform", "best_baseline", "p_over_best_baseline",
                                                 "evaluations", "wall_time_s"])
    columns = [("method", "method"), ("kind", "kind"), ("runs", "runs ok"), ("failed", "failed"),
               ("val_mean", "searched val. acc. mean"), ("iqm", "final test acc. IQM"),
               ("ci", "95% CI of IQM"), ("mean", "final test acc. mean"),
               ("p_over_uniform", "P(> uniform)"), ("p_best", "P(> best baseline)"),
               ("evaluations", "reward evaluations"), ("wall_time_s", "wall time [s]")]

    def cell(r: dict[str, Any]) -> dict[str, Any]:
        if not r["runs"]:
            return {**r, "val_mean": "-", "iqm": "-", "ci": "-", "mean": "-", "p_over_uniform": "-", "p_best": "-",
                    "evaluations": "-", "wall_time_s": "-"}
        pu = r["p_over_uniform"]
        return {**r, "ci": f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]",
                "p_over_uniform": "-" if pu != pu else f"{pu:.2f}",
                "p_best": "-" if not r["best_baseline"] else f"{r['p_over_best_baseline']:.2f} ({r['best_baseline']})",
                "evaluations": f"{r['evaluations']:.1f}", "wall_time_s": f"{r['wall_time_s']:.1f}"}

    table = markdown_table([cell(r) for r in rows], columns)
    header = (f"{env_id}, {problem.task.name} on {problem.hardware}, {problem.budget_metric} budget "
              f"{problem.budget / problem.reference_cost[problem.budget_metric]:.3f} of all-8-bit, "
              f"finetune_steps={problem.finetune_steps}; float accuracy val {problem.float_accuracy('val'):.4f}, "
              f"test {problem.float_accuracy('test'):.4f}; {seeds} seeds, <= {max_evaluations} reward evaluations each. "
              "Accuracies are fractions. Each run searches with the validation accuracy as its reward; its best "
              f"policy is then retrained for {final_steps} steps under retraining seeds {list(FINAL_SEEDS)} and scored "
              "on the test split (final test acc. = the mean of the three). IQM: interquartile mean over seeds; "
              "CI: 95% percentile bootstrap of the IQM; P(> X): probability that a run of the method beats a run "
              "of X (ties count one half).\n\n")
    atomic_write_text(out / "results.md", header + table)
    compare_figure([r for r in runs if r.ok], methods, out / "compare.png", value="final_test_accuracy")
    print(header + table)
    failed = sum(not r.ok for r in runs)
    print(f"{len(runs)} runs ({failed} failed){'' if report_only else f' in {time.perf_counter() - start:.0f} s'}; "
          f"results in {out}/: results.md, summary.csv, runs.csv, compare.png")
    return {"runs": runs, "summary": rows, "table": table}


def grid_cells(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid over environment arguments (``{"budget_fraction": [0.3, 0.5], ...}``)."""
    import itertools

    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UsageError(f"--grid {key}: expected a non-empty list of values (KEY=V1,V2,...), got {values!r}")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def cell_name(cell: dict[str, Any]) -> str:
    """A folder name for one grid cell: ``budget_fraction=0.3,hardware=bitfusion``."""
    return ",".join(f"{k}={v}" for k, v in cell.items()).replace("/", "_") or "default"


def compare_grid(grid: dict[str, list[Any]], out: str | os.PathLike[str] = "results/compare",
                 env_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """``compare`` once per cell of a grid over environment arguments (budgets, profiles, tasks).

    Each cell is a comparison of its own in ``out/<cell>/`` (resumable like any other); ``out/grid.md``
    collects every cell's table, and a cell that fails as a whole (e.g. an infeasible budget) is
    reported there without stopping the others.
    """
    out = Path(out)
    sections, results = [], {}
    for cell in grid_cells(grid):
        name = cell_name(cell)
        print(f"== grid cell {name}", flush=True)
        try:
            results[name] = compare(out=out / name, env_kwargs={**(env_kwargs or {}), **cell}, **kwargs)
            sections.append(f"## {name}\n\n{results[name]['table']}\n")
        except UsageError as exc:
            sections.append(f"## {name}\n\nnot run: {exc}\n")
            print(f"grid cell {name}: not run: {exc}", flush=True)
    atomic_write_text(out / "grid.md", "\n".join(sections))
    return results


def compare_table(env_kwargs: dict[str, Any], agents: list[str] | None, baselines: list[str] | None, seeds: int,
                  max_evaluations: int, out: str | os.PathLike[str],
                  hyperparams: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``compare`` on ``MixedPrecisionTable-v0``: best-so-far regret of every agent and baseline.

    Regret after n = 10, 30, 100, 300, 1000 reward evaluations (mean and 95% CI over ``seeds``),
    random search's closed-form expectation, and the regret-vs-evaluations curves; writes
    ``results.md``, ``regret.json`` and ``regret.png`` into ``out``.
    """
    agents, baselines = _checked_methods(agents, baselines, TABLE_METHODS, TABLE_METHODS,
                                         f" on {TABLE_ENV_ID} (the others need the network itself)")
    if seeds < 1 or max_evaluations < 1:
        raise UsageError("--seeds and --max-evaluations must be >= 1")
    allowed = ("table", "hardware", "budget_metric", "budget_fraction", "budget_level", "budget")
    unknown = sorted(set(env_kwargs) - set(allowed))
    if unknown:
        raise UsageError(f"--env-kwargs {', '.join(unknown)} not allowed for a regret study; expected some of: "
                         f"{', '.join(allowed)}")
    try:
        problem = TableProblem(**env_kwargs)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--env-kwargs {env_kwargs}: {exc}") from None
    out = Path(out)
    start = time.perf_counter()
    study = regret_study(problem, baselines, range(seeds), max_evaluations)
    for algo in agents:
        if (hyperparams or {}).get(algo):
            raise UsageError("--hyperparams are not passed to the agents of a regret study; set them in the YAML")
        add_agent_runs(study, dict(env_kwargs), algo, out / "agents")
    table = study.markdown()
    header = (f"{TABLE_ENV_ID}: {study.describe()}; {seeds} seeds, <= {max_evaluations} reward evaluations each. "
              f"Best-so-far regret ({study.unit}) after n reward evaluations: mean [95% CI] over seeds.\n\n")
    atomic_write_text(out / "results.md", header + table)
    atomic_write_json(out / "regret.json", {
        "setting": study.describe(), "unit": study.unit, "seeds": study.seeds, "max_evaluations": max_evaluations,
        "rows": study.rows(), "random_closed_form": study.random_expectation(),
        "final_regret": {m: r.final for m, r in study.runs.items()}})
    plot_regret({m: r.curves for m, r in study.runs.items()}, out / "regret.png", study.unit, title=study.describe())
    print(header + table)
    print(f"{len(study.runs)} methods x {seeds} seeds in {time.perf_counter() - start:.0f} s; results in {out}/: "
          "results.md, regret.json, regret.png")
    return {"study": study, "table": table}


def _checked_methods(agents: list[str] | None, baselines: list[str] | None, default_baselines: Sequence[str],
                     allowed_baselines: Sequence[str], where: str = "") -> tuple[list[str], list[str]]:
    """The agents and baselines to run (defaults where None); an unknown name is a UsageError."""
    agents = list(agents if agents is not None else ["maskable_ppo"])
    baselines = list(baselines if baselines is not None else default_baselines)
    for a in agents:
        if a not in AGENTS:
            raise UsageError(f"--agents {a!r} is not allowed; expected some of: {', '.join(AGENTS)}")
    for b in baselines:
        if b not in allowed_baselines:
            raise UsageError(f"--baselines {b!r} is not allowed{where}; expected some of: {', '.join(allowed_baselines)}")
    return agents, baselines
