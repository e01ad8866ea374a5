"""Agents against the solvers of any problem over seeds: runs, summary statistics, a table and a figure.

``compare`` is what ``python train.py compare`` runs, in three steps:

* plan (:mod:`agents.compare_plan`): a checked :class:`~agents.compare_plan.CompareConfig` and the
  problem's adapter (:mod:`agents.compare_adapters`) give the runs, one
  :class:`~agents.compare_plan.RunSpec` per (method, seed);
* execute (:mod:`agents.compare_backends`): a backend (serial, process pool, Ray) runs the specs
  and hands back one record per run; runs.csv is rewritten (atomically) as each finishes;
* report (:mod:`agents.compare_report`): summary.csv, results.md and compare.png from the records.

Bad arguments raise ``ValueError`` / ``TypeError`` naming the argument; every file is written atomically.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents import AGENTS
from agents.compare_adapters import (  # noqa: F401  (importable from here, as before)
    DEFAULT_BASELINES,
    FINAL_SEEDS,
    MIXED_PRECISION_IDS,
    TABLE_ENV_ID,
    ProblemAdapter,
    TableAdapter,
    _search,
    adapter_for,
    run_one,
)
from agents.compare_backends import execute_run, make_backend  # noqa: F401  (execute_run: importable)
from agents.compare_plan import BACKENDS, DEFAULT_COMPARE_ENV, CompareConfig, plan_runs  # noqa: F401
from agents.compare_report import summarize, write_report  # noqa: F401  (summarize: importable from here)

# RUN_FIELDS (the columns of runs.csv) and the record type live in agents.records; importable from here too
from agents.records import (  # noqa: F401
    OBJECTIVE_RUN_FIELDS,
    RUN_FIELDS,
    ComparisonRun,
    ObjectiveRun,
    RecordError,
    as_run,
    check_number_field,
)
from agents.regret import add_agent_runs
from baselines.mixed_precision.regret import TABLE_METHODS, regret_study
from quant_envs.atomic_io import atomic_write_csv, atomic_write_json, atomic_write_text
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.regret import plot_regret


def read_runs(path: Path, missing_ok: bool = False, record_type: Any = ComparisonRun) -> list[Any]:
    """The runs of a runs.csv (this or an earlier version's) as ``record_type`` records; a missing
    file (unless ``missing_ok``) or a malformed row is a ValueError naming the file (and line)."""
    if not path.is_file():
        if missing_ok:
            return []
        raise ValueError(f"{path} does not exist; run the comparison before reporting it")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return [record_type.from_row(row, f"{path} line {reader.line_num}") for row in reader]


def _listed(names: Sequence[str] | None) -> list[str] | None:
    return None if names is None else list(names)


def _fields(record_type: Any) -> tuple[str, ...]:
    return RUN_FIELDS if record_type is ComparisonRun else OBJECTIVE_RUN_FIELDS


def _checked_methods(agents: Sequence[str] | None, baselines: Sequence[str] | None, default_agents: Sequence[str],
                     default_baselines: Sequence[str], allowed_baselines: Sequence[str],
                     where: str = "") -> tuple[list[str], list[str]]:
    """The agents and baselines to run (defaults where None); an unknown name is a ValueError."""
    agents = list(agents if agents is not None else default_agents)
    baselines = list(baselines if baselines is not None else default_baselines)
    for a in agents:
        if a not in AGENTS:
            raise ValueError(f"agents: {a!r} is not allowed; expected some of: {', '.join(AGENTS)}")
    for b in baselines:
        if b not in allowed_baselines:
            raise ValueError(f"baselines: {b!r} is not allowed{where}; expected some of: {', '.join(allowed_baselines)}")
    return agents, baselines


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
    """Agents against the solvers of ``env_id``'s problem over ``seeds`` seeds; writes runs.csv,
    summary.csv, results.md, compare.png (and compare.json, the settings) into ``out``.

    The arguments are those of :class:`~agents.compare_plan.CompareConfig` plus where and how to
    run (see :func:`run_comparison`, which takes the config itself). Each problem scores runs in
    its own unit (:mod:`agents.compare_adapters`): mixed precision by the final test accuracy of
    the policy each run found (retrained for ``final_finetune_steps``, default the task's, under 3
    seeds), the compander by SQNR (dB), FEEL by training time (s), CVT by E/E*.
    ``resume`` keeps the finished runs of ``out/runs.csv`` (same settings) and runs only the rest;
    ``report_only`` rebuilds the table and figure from ``out/runs.csv``. ``backend``: "local"
    (``jobs`` worker processes here) or "ray" (Ray Tune, one trial per run, on the cluster
    ``RAY_ADDRESS`` names or a local Ray instance with ``jobs`` CPUs; needs the ``ray`` extra).
    MixedPrecisionTable-v0 runs a regret study instead (:func:`compare_table`).
    """
    config = CompareConfig(env_id=env_id, agents=None if agents is None else tuple(agents),
                           baselines=None if baselines is None else tuple(baselines), seeds=seeds,
                           max_evaluations=max_evaluations, timesteps=timesteps, env_kwargs=env_kwargs or {},
                           hyperparams=hyperparams or {}, final_finetune_steps=final_finetune_steps)
    return run_comparison(config, out, jobs=jobs, report_only=report_only, resume=resume, backend=backend)


def run_comparison(config: CompareConfig, out: str | os.PathLike[str] = "results/compare", *, jobs: int = 1,
                   report_only: bool = False, resume: bool = False, backend: str = "local") -> dict[str, Any]:
    """Plan, execute and report the comparison ``config`` in ``out`` (see :func:`compare`)."""
    adapter = adapter_for(config.env_id)
    if isinstance(adapter, TableAdapter):
        if report_only or resume or backend != "local":
            raise ValueError(f"report_only, resume and backend='ray' are for the live environments; a regret "
                             f"study on {TABLE_ENV_ID} takes seconds to rerun")
        return compare_table(dict(config.env_kwargs), _listed(config.agents), _listed(config.baselines),
                             adapter.default_seeds if config.seeds is None else config.seeds, config.max_evaluations,
                             out, {a: dict(p) for a, p in config.hyperparams.items()})
    if config.final_finetune_steps is not None and config.env_id not in MIXED_PRECISION_IDS:
        raise ValueError(f"final_finetune_steps={config.final_finetune_steps!r} is for the mixed-precision ids; "
                         f"{config.env_id} has no retraining")
    agents, baselines = _checked_methods(config.agents, config.baselines, adapter.agents_for(config.env_id),
                                         adapter.default_baselines(config.env_id), adapter.methods(config.env_id),
                                         f" on {config.env_id}")
    seeds = adapter.default_seeds if config.seeds is None else config.seeds
    backend_impl = make_backend(backend, jobs, Path(out) / "ray", adapter.record_type) if not report_only else None
    out = Path(out)
    settings = adapter.prepare(config, out)  # bad env_kwargs raise here, before any run
    methods = agents + baselines
    start = time.perf_counter()
    fields = _fields(adapter.record_type)
    runs: list[Any]
    if report_only:
        if (out / "compare.json").is_file():  # the settings the runs were made with
            saved = json.loads((out / "compare.json").read_text())
            settings = {**settings, **{k: saved[k] for k in ("max_evaluations", "final_steps", "timesteps")
                                       if k in saved}}
            baselines = saved.get("baselines", baselines)
        runs = read_runs(out / "runs.csv", record_type=adapter.record_type)
        methods = list(dict.fromkeys(r.method for r in runs))
        baselines = [m for m in methods if m in baselines or any(r.kind == "baseline" for r in runs if r.method == m)]
        seeds = len({r.seed for r in runs})
    else:
        runs = _execute(adapter, settings, agents, baselines, seeds, out, resume, backend_impl, fields)
    report = write_report(out, adapter, runs, methods, baselines, settings, seeds)
    print(report["header"] + report["table"])
    failed = sum(not r.ok for r in runs)
    print(f"{len(runs)} runs ({failed} failed){'' if report_only else f' in {time.perf_counter() - start:.0f} s'}; "
          f"results in {out}/: results.md, summary.csv, runs.csv, compare.png")
    return {"runs": runs, "summary": report["summary"], "table": report["table"]}


def _execute(adapter: ProblemAdapter, settings: dict[str, Any], agents: list[str], baselines: list[str], seeds: int,
             out: Path, resume: bool, backend: Any, fields: Sequence[str]) -> list[Any]:
    """Run what the plan lists (less the finished runs kept by ``resume``); runs.csv as runs finish."""
    compare_json = {**settings, "problem": adapter.name, "agents": agents, "baselines": baselines, "seeds": seeds}
    runs: list[Any] = []
    done: set[tuple[str, int]] = set()
    if resume:
        if (out / "compare.json").is_file():
            saved = json.loads((out / "compare.json").read_text())
            changed = [k for k in adapter.resume_keys if saved.get(k) != json.loads(json.dumps(compare_json.get(k)))]
            if changed:
                raise ValueError(f"resume: {out} was run with other settings ({', '.join(changed)}); "
                                 "use another output folder or the same settings")
        runs = [r for r in read_runs(out / "runs.csv", missing_ok=True, record_type=adapter.record_type) if r.ok]
        done = {(r.method, r.seed) for r in runs}
    specs = plan_runs(adapter.name, agents, baselines, seeds, settings, done)
    if resume:
        print(f"--resume: {len(done)} finished runs kept, {len(specs)} to run", flush=True)
    atomic_write_json(out / "compare.json", compare_json)

    def finished(record: Any) -> None:
        runs.append(record)
        atomic_write_csv(out / "runs.csv", [run.to_row() for run in runs], fields)
        print(_progress_line(record), flush=True)

    backend.execute(specs, finished)
    order = {m: i for i, m in enumerate(agents + baselines)}
    runs.sort(key=lambda r: (order.get(r.method, len(order)), r.seed))
    atomic_write_csv(out / "runs.csv", [r.to_row() for r in runs], fields)
    return runs


def _progress_line(r: Any) -> str:
    if not r.ok:
        return f"{r.method:>20} seed {r.seed}: FAILED: {r.error}"
    if isinstance(r, ComparisonRun):
        return (f"{r.method:>20} seed {r.seed}: final test {r.final_test_accuracy:.4f} "
                f"(searched val {r.val_accuracy:.4f}), {r.reward_evaluations} evaluations, {r.wall_time_s:.1f} s")
    return f"{r.method:>20} seed {r.seed}: {r.objective:.6g} {r.unit}, {r.evaluations} evaluations, {r.wall_time_s:.1f} s"


def grid_cells(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid over environment arguments (``{"budget_fraction": [0.3, 0.5], ...}``)."""
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid[{key!r}]: expected a non-empty list of values, got {values!r}")
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
        except ValueError as exc:
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
    agents, baselines = _checked_methods(agents, baselines, TableAdapter.default_agents, TABLE_METHODS, TABLE_METHODS,
                                         f" on {TABLE_ENV_ID} (the others need the network itself)")
    if seeds < 1 or max_evaluations < 1:
        raise ValueError(f"seeds={seeds!r} and max_evaluations={max_evaluations!r}: expected integers >= 1")
    allowed = ("table", "hardware", "budget_metric", "budget_fraction", "budget_level", "budget")
    unknown = sorted(set(env_kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"env_kwargs {', '.join(unknown)} not allowed for a regret study; expected some of: "
                         f"{', '.join(allowed)}")
    try:
        problem = TableProblem(**env_kwargs)
    except (TypeError, ValueError) as exc:
        raise (TypeError if isinstance(exc, TypeError) else ValueError)(f"env_kwargs={env_kwargs}: {exc}") from None
    out = Path(out)
    start = time.perf_counter()
    study = regret_study(problem, baselines, range(seeds), max_evaluations)
    for algo in agents:
        if (hyperparams or {}).get(algo):
            raise ValueError("hyperparams are not passed to the agents of a regret study; set them in the YAML")
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
