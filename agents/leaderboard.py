"""The leaderboard as generated data: run CSVs under ``leaderboard/``, then LEADERBOARD.md and figures.

One command runs whatever is missing and regenerates everything from the CSVs::

    python -m agents.leaderboard --seeds 20 --max-evaluations 1000 --workers 2

* **Runs** (resumable, parallel): for every setting of
  :data:`~baselines.mixed_precision.regret.LEADERBOARD_SETTINGS` (scenario = table, instance =
  hardware, budget metric and budget) and every method, one CSV
  ``leaderboard/runs/<table>/<instance>/<method>.csv`` with one row per (seed, n): the best-so-far
  regret after n reward evaluations (distinct policies), the run's wall time, the evaluations it
  used and the SHA-256 of the policy file holding that best policy
  (``leaderboard/policies/<digest>.json``, content-addressed, a ``train.py validate`` file). A seed
  whose rows are already in the CSV at the same checkpoints is kept, not rerun (``--force`` reruns
  every seed asked for); the CSV is rewritten after each seed, so a run stopped midway resumes at
  its next seed. Jobs run on a process pool of ``--workers``.
* **Pareto track**: ``leaderboard/pareto/<table>/<hardware>-<metric>/<method>.csv``, hypervolume
  regret per (seed, n) (:mod:`baselines.mixed_precision.pareto`; where a grid is too large to
  enumerate, against a front swept over budgets, its solved optima kept in ``front.json`` beside
  the CSVs); its RL entrant
  (:data:`PARETO_AGENT_METHODS`) trains on the table environment with the budget drawn per episode
  (``budget_range``) and enters every distinct policy it asked for (:func:`pareto_evaluated`).
* **Generation**: every distinct policy file is replayed (:func:`agents.validate.validate`) and a
  row whose file is missing, does not validate, or claims another regret than the row is refused
  (listed in the report). Then the aggregates (:mod:`baselines.mixed_precision.aggregate`) and the
  figures (``--figures``, by default ``docs/figures/leaderboard/`` so that the documentation site,
  which includes LEADERBOARD.md, serves them), and the markdown file.

A row with no file is allowed only before a method's first feasible policy (greedy_sensitivity's
probes are over budget): its regret must then be the worst feasible policy's.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.regret import record_from_episodes
from agents.training import train
from agents.validate import validate
from baselines.mixed_precision.aggregate import (
    iqm,
    performance_profile,
    plot_intervals,
    plot_profiles,
    probability_of_improvement,
    stratified_bootstrap_ci,
)
from baselines.mixed_precision.pareto import (
    PARETO_METHODS,
    ParetoInstance,
    has_front,
    pareto_instance,
    pareto_run,
    plot_front,
    sweep_levels,
)
from baselines.mixed_precision.regret import LEADERBOARD_SETTINGS
from baselines.mixed_precision.solvers import METHODS, solve
from baselines.mixed_precision.space import SearchSpace
from quant_envs.atomic_io import atomic_write_text
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.registry import load_table
from quant_envs.mixed_precision.tables.regret import confidence_interval

#: Evaluation counts reported (3000 where the run's allowance reaches it).
CHECKPOINTS = (1, 10, 30, 100, 300, 1000, 3000)
REPORTED = (10, 30, 100, 300, 1000, 3000)
#: Every table method of the leaderboard, in the order listed.
#: The commands that ran jobs into the leaderboard folder, in order (LEADERBOARD.md's header).
COMMANDS_FILE = "commands.txt"
LEADERBOARD_METHODS = ("random", "evolution", "regularized_evolution", "tpe", "cmaes", "greedy_sensitivity",
                       "greedy_std", "hawq_v3", "uniform")
#: RL agents run as leaderboard methods: ``train.py`` on the table environment (their hyperparameters
#: from ``agents/hyperparams/``, untuned). DDPG-HAQ acts in HAQ's Box of shape (1,), so it runs on the
#: continuous table environment (the same table, masks and scores; :data:`AGENT_ENVS`).
AGENT_METHODS = ("maskable_ppo", "ppo", "ddpg_haq")
#: An agent's run stops at ``--max-evaluations`` distinct policies or at this many episodes per
#: allowed evaluation, whichever comes first: a converged policy repeats itself (a repeat is free),
#: and a table may hold fewer feasible policies than the allowance.
EPISODES_PER_EVALUATION = 5
TABLE_ENV = "quant_envs/MixedPrecisionTable-v0"
TABLE_CONTINUOUS_ENV = "quant_envs/MixedPrecisionTableContinuous-v0"
#: The environment each agent trains on (policy files name TABLE_ENV: a policy replays alike on both).
AGENT_ENVS = {"maskable_ppo": TABLE_ENV, "ppo": TABLE_ENV, "ddpg_haq": TABLE_CONTINUOUS_ENV}
#: RL entrants of the Pareto track: trained on TABLE_ENV with each episode's budget level drawn from
#: PARETO_BUDGET_RANGE (the Pareto track's normalised cost axis, cheapest to dearest policy) and shown
#: in the observation; every distinct policy asked for, at any budget, is one evaluation.
PARETO_AGENT_METHODS = ("maskable_ppo",)
PARETO_BUDGET_RANGE = (0.0, 1.0)
PARETO_BUDGET_GRID = 21
#: The leaderboard's tracks: best-so-far regret at a budget, and hypervolume regret without one.
TRACKS = ("regret", "pareto")
RUN_FIELDS = ("seed", "n", "regret", "wall_time_s", "evaluations", "policy_sha256")
#: A swept front's solved optima, in its Pareto folder beside the CSVs (:func:`pareto_folder`).
FRONT_FILE = "front.json"
PARETO_FIELDS = ("seed", "n", "hv_regret", "wall_time_s", "evaluations")


def setting_slug(setting: dict[str, Any]) -> tuple[str, str]:
    """(scenario, instance) folder names of a setting, e.g. ('digits-cnn', 'bismo-edge-latency-fraction0.5')."""
    budget = next(f"{k.removeprefix('budget_')}{v}" for k, v in setting.items() if k.startswith("budget_")
                  and k != "budget_metric")
    return setting["table"], f"{setting.get('hardware', 'default')}-{setting['budget_metric']}-{budget}"


def _write_csv(path: Path, fields: Sequence[str], rows: list[dict[str, Any]]) -> None:

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def policy_file(setting: dict[str, Any], evaluation: Any) -> tuple[str, str]:
    """(SHA-256, JSON text) of the policy file of a table evaluation (what ``train.py validate`` replays)."""
    record = {"env_id": TABLE_ENV, "env_kwargs": dict(setting), "policy": [list(p) for p in evaluation.policy],
              "accuracy": evaluation.accuracy, "regret": evaluation.regret, "budget_used": evaluation.budget_used,
              "optimum_score": evaluation.optimum_score, "table_digest": evaluation.table_digest}
    text = json.dumps(record, sort_keys=True, indent=1) + "\n"
    return hashlib.sha256(text.encode()).hexdigest(), text


def agent_evaluations(env_id: str, algo: str, seed: int, env_kwargs: dict[str, Any], max_evaluations: int,
                      num_units: int) -> tuple[list[dict[str, str]], float]:
    """One ``train.py`` run of ``algo`` on ``env_id``, stopped at ``max_evaluations`` reward evaluations
    (episodes whose ``info["cached"]`` is False: a policy this environment answered before is free) or
    :data:`EPISODES_PER_EVALUATION` episodes per allowed evaluation (``num_units`` steps each).
    Returns the evaluations (``evaluations.csv`` rows of the uncached episodes, in order: the distinct
    policies in the order first asked for) and the run's wall time (s)."""
    with tempfile.TemporaryDirectory(prefix=f"leaderboard-{algo}-") as tmp, warnings.catch_warnings():
        # PPO does not read the masks: the environment projects a masked action (counted per episode)
        warnings.filterwarnings("ignore", message=".*has action masks but --algo.*")
        start = time.perf_counter()
        timesteps = EPISODES_PER_EVALUATION * max_evaluations * num_units
        # no checkpoints between the first and the last (the folder is thrown away): the same
        # episodes, about a fifth less time
        train(env_id=env_id, algo=algo, seed=int(seed), env_kwargs=dict(env_kwargs), timesteps=timesteps, out=tmp,
              max_evaluations=max_evaluations, progress_bar=False, test_best=False, verbose=False, force=True,
              checkpoint_freq=timesteps)
        wall = time.perf_counter() - start
        with open(Path(tmp) / "evaluations.csv", newline="") as f:
            episodes = list(csv.DictReader(f))
    return [e for e in episodes if e["cached"].lower() not in ("true", "1")], wall


def agent_history(setting: dict[str, Any], algo: str, seed: int, max_evaluations: int
                  ) -> tuple[list[tuple[Any, float, bool]], float]:
    """One ``train.py`` run of ``algo`` on its table environment (:data:`AGENT_ENVS`) at ``setting``
    (:func:`agent_evaluations`). Returns the distinct policies in the order first asked for, as
    (policy, score, within budget), and the run's wall time (s)."""
    num_units = TableProblemCache.get(setting).num_layers  # steps per episode
    fresh, wall = agent_evaluations(AGENT_ENVS[algo], algo, seed, setting, max_evaluations, num_units)
    record = record_from_episodes(fresh)  # the project's rule for "within budget" (1e-9 slack)
    history = [(tuple(tuple(u) for u in json.loads(e["policy"])), float(score), bool(ok))
               for e, score, ok in zip(fresh, record.scores, record.feasible)]
    return history, wall


class TableProblemCache:
    """One :class:`TableProblem` per setting and process (building one enumerates its optimum)."""

    _problems: dict[str, Any] = {}

    @classmethod
    def get(cls, setting: dict[str, Any]) -> Any:
        key = json.dumps(setting, sort_keys=True)
        if key not in cls._problems:
            cls._problems[key] = TableProblem(**setting)
        return cls._problems[key]


def run_job(job: tuple[Any, ...]) -> tuple[str, float]:
    """The seeds of one (setting, method) its CSV lacks, or every seed asked for where the job's
    optional sixth field (resume) is False; writes the CSV and policy files. Job: (setting, method,
    seeds, allowance, out folder[, resume]). Returns (CSV path, wall s).

    A method of :data:`AGENT_METHODS` is an RL agent trained once per seed (:func:`agent_history`);
    any other is a solver of :func:`baselines.mixed_precision.solve`. Both give the distinct
    policies evaluated, in order, and are scored alike."""

    setting, method, seeds, max_evaluations, out, *rest = job
    root = Path(out)
    problem = TableProblemCache.get(setting)
    worst = problem.regret(problem.optimum.worst_score)

    def one_seed(seed: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        problem.reset_counts()
        if method in AGENT_METHODS:
            history, wall = agent_history(setting, method, int(seed), max_evaluations)
        else:
            result = solve(problem, method, max_evaluations=max_evaluations, seed=int(seed))
            history = [(policy, score, cost <= problem.limit) for policy, score, cost in result.history]
            wall = result.wall_time_s
        best, best_n, digest = None, 0, ""
        for n in checkpoints(max_evaluations):
            for policy, score, feasible in history[best_n:n]:  # best-so-far feasible among the first n
                if feasible and (best is None or score > best[1]):
                    best = (policy, score)
            best_n = min(n, len(history))
            if best is None:
                regret, digest = worst, ""
            else:
                evaluation = problem.evaluate(best[0])
                digest, text = policy_file(setting, evaluation)
                policy_path = root / "policies" / f"{digest}.json"
                if not policy_path.exists():
                    atomic_write_text(policy_path, text)
                regret = evaluation.regret
            rows.append({"seed": int(seed), "n": n, "regret": repr(float(regret)),
                         "wall_time_s": f"{wall:.4f}", "evaluations": len(history),
                         "policy_sha256": digest})
        return rows

    return run_seeds(run_csv(root, setting, method), RUN_FIELDS, seeds, max_evaluations,
                     bool(rest[0]) if rest else True, one_seed)


def checkpoints(max_evaluations: int) -> list[int]:
    """The evaluation counts a run with this allowance reports (:data:`CHECKPOINTS` up to it)."""
    return [c for c in CHECKPOINTS if c <= max_evaluations]


def run_csv(out: Path, setting: dict[str, Any], method: str) -> Path:
    """The regret track's CSV of ``method`` at ``setting``."""
    scenario, instance = setting_slug(setting)
    return out / "runs" / scenario / instance / f"{method}.csv"


def pareto_folder(out: Path, table: str, hardware: str, metric: str) -> Path:
    """The Pareto track's folder of one (table, hardware, metric): a CSV per method and ``front.json``."""
    return out / "pareto" / table / f"{hardware}-{metric}"


def run_seeds(path: Path, fields: Sequence[str], seeds: Sequence[int], max_evaluations: int, resume: bool,
              one_seed: Callable[[int], list[dict[str, Any]]]) -> tuple[str, float]:
    """Run ``one_seed(seed) -> rows`` for each seed of ``seeds`` the CSV at ``path`` lacks at these
    checkpoints (every seed unless ``resume``), rewriting the CSV after each seed so that a stopped
    job resumes at its next one. Returns (CSV path, wall s)."""
    start = time.perf_counter()
    kept = kept_seeds(path, checkpoints(max_evaluations)) if resume else {}
    for seed in (s for s in seeds if int(s) not in kept):
        kept[int(seed)] = one_seed(int(seed))
        _write_seeds(path, fields, kept)
    if not path.exists():
        _write_seeds(path, fields, kept)
    return str(path), time.perf_counter() - start


def kept_seeds(path: Path, ns: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The rows of ``path`` per seed, for the seeds run at exactly the checkpoints ``ns`` (a seed run
    at another allowance is not kept: one CSV holds one allowance)."""
    if not path.exists():
        return {}
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for r in _read_csv(path):
        by_seed.setdefault(int(r["seed"]), []).append(r)
    return {k: rows for k, rows in by_seed.items() if sorted(int(r["n"]) for r in rows) == sorted(ns)}


def missing_seeds(path: Path, seeds: Sequence[int], max_evaluations: int) -> list[int]:
    """The seeds of ``seeds`` that ``path`` holds no complete run of at ``max_evaluations``."""
    kept = kept_seeds(path, checkpoints(max_evaluations))
    return [int(s) for s in seeds if int(s) not in kept]


def _write_seeds(path: Path, fields: Sequence[str], by_seed: dict[int, list[dict[str, Any]]]) -> None:
    _write_csv(path, fields, [r for k in sorted(by_seed) for r in by_seed[k]])


def pareto_job(job: tuple[Any, ...]) -> tuple[str, float]:
    """:func:`run_job` for the Pareto track: (table, hardware, metric, method, seeds, allowance, out[, resume])."""

    table, hardware, metric, method, seeds, max_evaluations, out, *rest = job
    folder = pareto_folder(Path(out), table, hardware, metric)
    instance = pareto_instance(load_table(table), hardware, metric, folder / FRONT_FILE)

    def one_seed(seed: int) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        evaluated = pareto_evaluated(table, instance, method, seed, max_evaluations)
        wall = time.perf_counter() - t0
        return [{"seed": seed, "n": n, "hv_regret": repr(float(r)), "wall_time_s": f"{wall:.4f}",
                 "evaluations": len(evaluated)} for n, r in instance.hv_regret(evaluated, checkpoints(max_evaluations)).items()]

    return run_seeds(folder / f"{method}.csv", PARETO_FIELDS, seeds, max_evaluations, bool(rest[0]) if rest else True,
                     one_seed)


def pareto_evaluated(table: str, instance: ParetoInstance, method: str, seed: int, max_evaluations: int) -> list[int]:
    """The distinct policies (flat indices of ``instance``) a Pareto entrant evaluates, in order, at most
    ``max_evaluations``: a baseline's (:func:`~baselines.mixed_precision.pareto.pareto_run`), or an RL
    agent's (:data:`PARETO_AGENT_METHODS`): every distinct policy it asked for while trained on
    ``table`` at the instance's hardware and metric with the budget drawn per episode."""
    if method not in PARETO_AGENT_METHODS:
        return pareto_run(instance, method, seed, max_evaluations)
    env_kwargs = {"table": table, "hardware": instance.hardware, "budget_metric": instance.metric,
                  "budget_range": list(PARETO_BUDGET_RANGE), "budget_grid": PARETO_BUDGET_GRID}
    fresh, _ = agent_evaluations(TABLE_ENV, method, seed, env_kwargs, max_evaluations, instance.table.num_units)
    bits = list(instance.table.bits)
    return [instance.flat(np.array([bits.index(int(w)) for w, _ in json.loads(e["policy"])])) for e in fresh]


def pareto_instances() -> list[tuple[str, str, str]]:
    """(table, hardware, metric) of the Pareto track: those of the leaderboard's settings whose front
    can be found (:func:`~baselines.mixed_precision.pareto.pareto_instance`: an enumerable grid, or
    a separable or pairwise score an integer program solves at each budget)."""

    out = []
    for s in LEADERBOARD_SETTINGS:
        t = load_table(s["table"])
        key = (s["table"], s.get("hardware", t.default_hardware), s["budget_metric"])
        if has_front(t) and key not in out:
            out.append(key)
    return out


# ----------------------------------------------------------------------------------- generation


@dataclass
class Loaded:
    """The validated rows: per setting index, per method, per n, the array of per-seed regrets; refusals listed."""

    regret: dict[int, dict[str, dict[int, np.ndarray]]]
    wall: dict[int, dict[str, float]]
    refused: list[str]
    validated_files: int
    #: per setting index and method, the mean over seeds of the distinct policies a run evaluated
    used: dict[int, dict[str, float]] = field(default_factory=dict)


def _validate_file(path: str) -> tuple[bool, float | None, str]:

    try:
        report = validate(path)
    except (ValueError, TypeError, OSError) as exc:
        return False, None, str(exc)
    claim = json.loads(Path(path).read_text())
    return report.ok, float(claim["regret"]), "" if report.ok else report.format()


def load_runs(out: Path, methods: Sequence[str], workers: int) -> Loaded:
    regret: dict[int, dict[str, dict[int, np.ndarray]]] = {}
    wall: dict[int, dict[str, float]] = {}
    refused: list[str] = []
    used: dict[int, dict[str, float]] = {}
    raw: dict[tuple[int, str], list[dict[str, str]]] = {}
    for i, setting in enumerate(LEADERBOARD_SETTINGS):
        for m in methods:
            path = run_csv(out, setting, m)
            if path.exists():
                raw[(i, m)] = _read_csv(path)
    digests = sorted({r["policy_sha256"] for rows in raw.values() for r in rows if r["policy_sha256"]})
    paths = [str(out / "policies" / f"{d}.json") for d in digests]
    existing = [p for p in paths if Path(p).exists()]
    if workers <= 1:
        results = {p: _validate_file(p) for p in existing}
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = dict(zip(existing, pool.map(_validate_file, existing, chunksize=16)))

    for (i, m), rows in raw.items():
        problem = TableProblem(**LEADERBOARD_SETTINGS[i])
        worst = problem.regret(problem.optimum.worst_score)
        by_n: dict[int, list[float]] = {}
        walls: dict[int, float] = {}
        evaluations: dict[int, int] = {}
        for r in rows:
            where = f"{setting_slug(LEADERBOARD_SETTINGS[i])} {m} seed {r['seed']} n {r['n']}"
            value = float(r["regret"])
            if r["policy_sha256"]:
                p = str(out / "policies" / f"{r['policy_sha256']}.json")
                ok, claimed, why = results.get(p, (False, None, "policy file missing"))
                if not ok or claimed is None or not np.isclose(claimed, value, rtol=1e-9, atol=1e-12):
                    refused.append(f"{where}: {why or f'file claims regret {claimed}, row {value}'}")
                    continue
            elif not np.isclose(value, worst, rtol=1e-9, atol=1e-12):
                refused.append(f"{where}: no policy file and a regret ({value}) better than the worst feasible policy's")
                continue
            by_n.setdefault(int(r["n"]), []).append(value)
            walls[int(r["seed"])] = float(r["wall_time_s"])
            evaluations[int(r["seed"])] = int(r["evaluations"])
        if by_n:  # a method whose every row was refused has no entry
            regret.setdefault(i, {})[m] = {n: np.array(v) for n, v in by_n.items()}
            wall.setdefault(i, {})[m] = float(sum(walls.values()))
            used.setdefault(i, {})[m] = float(np.mean(list(evaluations.values())))
    return Loaded(regret, wall, refused, len(existing), used)


def reference_regret(setting: dict[str, Any], samples: int = 4096) -> tuple[float, str]:
    """Random search's best-of-1 expected regret at ``setting`` and how it was obtained: exact over
    the enumerated feasible set, else the mean over ``samples`` uniform feasible policies (seed 0)."""

    p = TableProblem(**setting)
    o = p.optimum
    scale = p.table.score_scale
    if o.feasible_scores is not None:
        return float(scale * (o.score - np.mean(o.feasible_scores))), "exact"
    space = SearchSpace(p, True)
    draws = space.sample_uniform(np.random.default_rng(0), samples)
    scores = [p.table.scores(np.array([p.bits.index(w) for w, _ in space.policy(c)])) for c in draws]
    return float(scale * (o.score - np.mean(scores))), f"mean of {len(draws)} uniform feasible samples"


def _label(method: str) -> str:
    """A method's name in the tables; RL agents marked as such."""
    return f"{method} (RL agent)" if method in AGENT_METHODS else method


def _cell(point: tuple[float, float, float], digits: int = 3) -> str:
    return f"{point[0]:.{digits}g} [{point[1]:.{digits}g}, {point[2]:.{digits}g}]"


def read_commands(out: Path) -> list[str]:
    """The commands that ran jobs into ``out``, in order (``out/commands.txt``; none if absent)."""
    path = out / COMMANDS_FILE
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] if path.exists() else []


def record_command(out: Path, command: str) -> list[str]:
    """Append ``command`` to ``out/commands.txt`` (written atomically; a command already listed
    moves to the end, the order the CSVs were last written in) and return the list."""
    commands = [c for c in read_commands(out) if c != command] + [command]
    atomic_write_text(out / COMMANDS_FILE, "\n".join(commands) + "\n")
    return commands


def generate(out: Path, markdown: Path, methods: Sequence[str], command: str, workers: int,
             figures: Path = Path("docs/figures/leaderboard")) -> str:
    """Validate the runs, compute the aggregates, draw the figures and write ``markdown``."""

    loaded = load_runs(out, methods, workers)
    rel = Path(os.path.relpath(figures, markdown.parent)).as_posix()  # figure links from the markdown
    refs = {i: reference_regret(s) for i, s in enumerate(LEADERBOARD_SETTINGS) if i in loaded.regret}
    ns = sorted({n for per in loaded.regret.values() for by_n in per.values() for n in by_n if n in REPORTED})
    present = [m for m in methods if any(m in per for per in loaded.regret.values())]

    def normalised(m: str, n: int, among: Sequence[int] | None = None) -> list[np.ndarray]:
        return [loaded.regret[i][m][n] / refs[i][0] if refs[i][0] > 0 else 0 * loaded.regret[i][m][n]
                for i in sorted(loaded.regret if among is None else among)
                if m in loaded.regret[i] and n in loaded.regret[i][m]]

    def covered(m: str, n: int, among: Sequence[int] | None = None) -> bool:  # runs at n on every instance
        return all(m in loaded.regret[i] and n in loaded.regret[i][m] for i in (among or loaded.regret))

    def aggregate(among: Sequence[int] | None = None) -> tuple[dict[str, dict[int, tuple[float, float, float]]],
                                                               dict[str, dict[int, tuple[float, float, float]]]]:
        iqms: dict[str, dict[int, tuple[float, float, float]]] = {}
        pois: dict[str, dict[int, tuple[float, float, float]]] = {}
        for m in present:
            for n in ns:
                if not covered(m, n, among):
                    continue
                iqms.setdefault(m, {})[n] = stratified_bootstrap_ci(normalised(m, n, among), iqm)
                if m != "random" and covered("random", n, among):
                    pois.setdefault(m, {})[n] = probability_of_improvement(normalised(m, n, among),
                                                                           normalised("random", n, among))
        return iqms, pois

    def aggregate_table(iqms: dict[str, dict[int, tuple[float, float, float]]],
                        pois: dict[str, dict[int, tuple[float, float, float]]]) -> list[str]:
        rows = ["| method | " + " | ".join(f"IQM @ {n}" for n in ns) + " | " +
                " | ".join(f"P(better than random) @ {n}" for n in (100, 1000) if n in ns) + " |",
                "|---" * (1 + len(ns) + len([n for n in (100, 1000) if n in ns])) + "|"]
        for m in present:
            if m not in iqms:
                continue
            cells = [_cell(iqms[m][n]) if n in iqms[m] else "-" for n in ns]
            cells += [_cell(pois[m][n], 2) if n in pois.get(m, {}) else "-" for n in (100, 1000) if n in ns]
            rows.append(f"| {_label(m)} | " + " | ".join(cells) + " |")
        return rows

    iqm_rows, poi_rows = aggregate()
    plot_intervals(iqm_rows, str(figures / "iqm.png"), "IQM of normalised regret",
                   "IQM over all instances, 95% stratified bootstrap CI; 0 = optimum, 1 = random search's best of 1")
    taus = np.linspace(0, 1.5, 301)
    profile_ns = [n for n in (100, 1000) if n in ns] or ns[-1:]
    for n in profile_ns:
        plot_profiles({m: performance_profile(normalised(m, n), taus) for m in present if covered(m, n)}, taus,
                      str(figures / f"profile-n{n}.png"), f"performance profiles after n = {n} evaluations")

    lines = [HEADER.format(command=command), "## Aggregate over all instances", "",
             f"Normalised regret = regret / random search's best-of-1 expected regret on the instance (0 = the "
             f"optimum, 1 = a uniformly drawn feasible policy). IQM over every run of every instance "
             f"({len(loaded.regret)} instances) with its 95% stratified bootstrap percentile interval "
             "(runs resampled within instances), and P(improvement over random search): per instance "
             "P(regret < random's) + P(equal)/2 over all pairs of runs, averaged over instances. A method is "
             "aggregated at n only where it has runs on every instance.", "",
             f"![IQM of normalised regret]({rel}/iqm.png)", ""]
    lines += [" ".join(f"![profile n={n}]({rel}/profile-n{n}.png)" for n in profile_ns), ""]
    lines += aggregate_table(iqm_rows, poi_rows)
    # methods run on some instances only (the RL agents at a reduced size): every method on those
    partial = [m for m in present if not all(m in per for per in loaded.regret.values())]
    common = sorted(i for i in loaded.regret if all(m in loaded.regret[i] for m in present))
    if partial and common:
        seed_counts = {m: sorted({len(next(iter(loaded.regret[i][m].values()))) for i in common}) for m in present}
        counts = sorted({c for v in seed_counts.values() for c in v})
        lines += ["", "### Aggregate over the instances every method ran on", "",
                  f"{', '.join(_label(m) for m in partial)} ran on {len(common)} of the {len(loaded.regret)} "
                  "instances (" + ", ".join("/".join(setting_slug(LEADERBOARD_SETTINGS[i])) for i in common) +
                  "); every method aggregated over those alone, as above."
                  + ("" if len(counts) == 1 else " Seed counts differ between methods ("
                     + "; ".join(f"{_label(m)}: {'/'.join(map(str, v))}" for m, v in seed_counts.items()
                                 if v != seed_counts[present[0]] or m == present[0])
                     + "): the stratified bootstrap resamples each method's own runs within each instance, so "
                       "a method with fewer seeds has a wider interval, not a biased one."), ""]
        lines += aggregate_table(*aggregate(common))
    lines += rl_section(present, ns, normalised, covered, sorted(loaded.regret), loaded.used)
    lines += ["", "## Per instance", "",
              "Best-so-far regret in the table's unit after n evaluations: mean [95% Student-t CI] over seeds; "
              "the allowance (the largest n the row ran to: the command's `--max-evaluations`, or its `--cap` "
              "for a method whose cost per evaluation did not fit it; a '-' marks an n beyond it; a 3000 "
              "column appears once a row runs that far); wall time of all seeds on the shared 2-core machine "
              "(other jobs running: compare ratios, not seconds).", ""]
    for i in sorted(loaded.regret):
        setting = LEADERBOARD_SETTINGS[i]
        scenario, instance = setting_slug(setting)
        unit = load_table(setting["table"]).regret_unit
        here = [n for n in ns if any(n in by_n for by_n in loaded.regret[i].values())]
        lines += [f"### {scenario} / {instance}", "",
                  f"Regret unit: {unit}. Reference (random best of 1): {refs[i][0]:.4g} ({refs[i][1]}). "
                  f"CSVs: `{out.as_posix()}/runs/{scenario}/{instance}/`.", "",
                  "| method | seeds | allowance | " + " | ".join(f"regret @ {n}" for n in here) + " | wall time (s) |",
                  "|---" * (len(here) + 4) + "|"]
        order = sorted(loaded.regret[i].items(), key=lambda kv: float(np.mean(kv[1][max(kv[1])])))
        for m, by_n in order:
            seeds = len(next(iter(by_n.values())))
            cells = [_cell(confidence_interval(by_n[n]), 4) if n in by_n else "-" for n in here]
            lines.append(f"| {_label(m)} | {seeds} | {max(by_n)} | " + " | ".join(cells) +
                         f" | {loaded.wall[i][m]:.1f} |")
        lines.append("")
    lines += pareto_section(out, figures, rel)
    lines += ["## Validation", "",
              f"{loaded.validated_files} distinct policy files replayed with `agents.validate.validate` "
              f"(`train.py validate`); rows refused: {len(loaded.refused)}."]
    lines += [f"- {r}" for r in loaded.refused[:50]]
    text = "\n".join(lines) + "\n"
    atomic_write_text(markdown, text)
    return text


def rl_section(present: Sequence[str], ns: Sequence[int], normalised: Any, covered: Any,
               instances: Sequence[int], used: dict[int, dict[str, float]] | None = None) -> list[str]:
    """Per scenario (table) and n of 100 and 1000: the best RL agent against the best baseline, each
    chosen by its IQM of normalised regret over the scenario's instances, with 95% stratified
    bootstrap intervals, and P(the agent's run beats the baseline's)."""
    lines = ["", "## RL agents against the best baseline", "",
             "Per scenario, over its instances: the RL agent and the baseline with the lowest IQM of normalised "
             "regret at n (each chosen among the methods with runs at n on every instance of the scenario), "
             "their IQMs [95% stratified bootstrap CI], and P(agent better): the probability that a run of "
             "the agent has lower regret than a run of the baseline (ties count half) [95% CI]. The verdict "
             "is the interval's: better or worse where it excludes 0.5, else no difference shown. 'Agent's "
             "evaluations' is the mean number of distinct policies the agent's runs evaluated, over seeds and the "
             "scenario's instances: fewer than the allowance means its runs converged and repeated their policy "
             f"(a repeat is free) until the stop at {EPISODES_PER_EVALUATION} episodes per allowed evaluation, "
             "so its best-so-far regret stopped improving there.", "",
             "| scenario | n | best RL agent | its IQM | best baseline | its IQM | P(agent better) | verdict | "
             "agent's evaluations |",
             "|---|---|---|---|---|---|---|---|---|"]
    by_table: dict[str, list[int]] = {}
    for i in instances:  # the settings with runs
        by_table.setdefault(LEADERBOARD_SETTINGS[i]["table"], []).append(i)
    for table, among in by_table.items():
        for n in (x for x in (100, 1000) if x in ns):
            runs = {m: normalised(m, n, among) for m in present if covered(m, n, among)}
            scored = {m: stratified_bootstrap_ci(r, iqm) for m, r in runs.items() if r}
            agents = [m for m in scored if m in AGENT_METHODS]
            base = [m for m in scored if m not in AGENT_METHODS]
            if not agents or not base:
                continue
            a = min(agents, key=lambda m: scored[m][0])
            b = min(base, key=lambda m: scored[m][0])
            p = probability_of_improvement(runs[a], runs[b])
            verdict = "RL better" if p[1] > 0.5 else "RL worse" if p[2] < 0.5 else "no difference shown"
            spent = [used[i][a] for i in among if used and a in used.get(i, {})]
            lines.append(f"| {table} | {n} | {_label(a)} | {_cell(scored[a])} | {b} | {_cell(scored[b])} | "
                         f"{_cell(p, 2)} | {verdict} | {f'{np.mean(spent):.0f}' if spent else '-'} |")
    return lines


def pareto_section(out: Path, figures: Path, rel: str) -> list[str]:

    lines = ["## Pareto track", "",
             "No budget: hypervolume regret (the reference front's normalised hypervolume minus that of the first n "
             "distinct policies evaluated; both axes scaled to [0, 1] over all policies of the table, reference "
             "point (worst score, dearest cost)); mean [95% CI] over seeds. Entrants: random search and "
             "Optuna's NSGA-II (library defaults), and MaskablePPO (RL agent; `agents/hyperparams/` default, "
             "untuned) trained on `quant_envs/MixedPrecisionTable-v0` at the hardware and metric with "
             f"`budget_range={PARETO_BUDGET_RANGE}, budget_grid={PARETO_BUDGET_GRID}`: each episode's budget level (0 = the cheapest policy's "
             "cost, 1 = the dearest's, the normalised cost axis here) drawn at reset from that many evenly spaced "
             "levels and given in the observation, the masks those of the drawn budget; its evaluations are "
             "the distinct policies it asked for, at any budget, in order (a run stops as the agents' "
             f"regret runs do: at the allowance or after {EPISODES_PER_EVALUATION} episodes per allowed "
             "evaluation). The reference front is exact where the table's grid can be enumerated; elsewhere "
             "(HAWQ-V3's ResNet-50, the 12-layer surrogate) it is the exact budgeted optimum at evenly "
             "spaced budget levels (1025 for a separable score, 65 for a pairwise surrogate; integer programs, "
             "solved once and kept in `front.json` beside the CSVs), whose hypervolume bounds the exact front's from below, the bound from above given with each.", ""]
    rows_all: dict[str, list[np.ndarray]] = {}
    for table, hw, metric in pareto_instances():
        folder = pareto_folder(out, table, hw, metric)
        runs = {m: _read_csv(folder / f"{m}.csv") for m in PARETO_METHODS + PARETO_AGENT_METHODS
                if (folder / f"{m}.csv").exists()}
        if not runs:
            continue
        inst = pareto_instance(load_table(table), hw, metric, folder / FRONT_FILE)
        if inst.exact:
            about = f"Exact front: {len(inst.front)} of {inst.num_policies:,} policies; its hypervolume {inst.front_hv:.4f}."
        else:
            about = (f"Front swept over {sweep_levels(inst.table)} budgets ({inst.num_policies:.3g} policies, too many to enumerate): "
                     f"{len(inst.front)} budgeted optima, hypervolume {inst.front_hv:.4f}; the exact front's is at most "
                     f"{inst.front_hv_upper:.4f}, so a regret may fall below zero by up to "
                     f"{inst.front_hv_upper - inst.front_hv:.4f}.")
        ns = sorted({int(r["n"]) for rows in runs.values() for r in rows if int(r["n"]) in REPORTED})
        lines += [f"### {table} / {hw}-{metric}", "",
                  about,
                  "", "| method | seeds | " + " | ".join(f"HV regret @ {n}" for n in ns) + " |",
                  "|---" * (len(ns) + 2) + "|"]
        for m, rows in runs.items():
            by_n: dict[int, list[float]] = {}
            for r in rows:
                by_n.setdefault(int(r["n"]), []).append(float(r["hv_regret"]))
            cells = [_cell(confidence_interval(np.array(by_n[n])), 3) if n in by_n else "-" for n in ns]
            lines.append(f"| {_label(m)} | {len({r['seed'] for r in rows})} | " + " | ".join(cells) + " |")
            if 1000 in by_n:
                rows_all.setdefault(m, []).append(np.array(by_n[1000]))
        name = f"pareto-{table}-{hw}-{metric}.png"
        plot_front(inst, {m: pareto_evaluated(table, inst, m, 0, 100) for m in runs}, str(figures / name))
        lines += ["", f"![front]({rel}/{name}) (seed 0, 100 evaluations)", ""]
    if rows_all:
        lines += ["IQM of HV regret @ 1000 over the Pareto instances [95% stratified bootstrap CI]: " +
                  "; ".join(f"{_label(m)} {_cell(stratified_bootstrap_ci(v))}" for m, v in rows_all.items()), ""]
    return lines


HEADER = """# Leaderboard: mixed-precision search on tables with a known optimum

Generated by these commands, run in this order (each keeps the seeds the earlier ones wrote at the
same allowance and runs only the missing ones, so rerunning them reruns nothing;
`leaderboard/commands.txt` lists them):

```bash
{command}
```

from the run CSVs under `leaderboard/` (one per scenario, instance and method: seed, n, regret, wall
time, policy file digest); do not edit by hand. Every table environment
(`quant_envs/MixedPrecisionTable-v0`) answers a policy from a shipped table and knows the exact
optimum at its budget, so a method is scored by its **regret** after n reward evaluations (distinct
policies asked for; a repeat is free). Regret is in the table's unit: for HAWQ-V3's tables minus the
perturbation `sum Tr(H)/n * ||W - Q_b(W)||^2` of HAWQ-V3's ILP (ICML 2021; data from `ILP.ipynb`,
github.com/Zhen-Dong/HAWQ, MIT licence); for the generated tables (digits-cnn, mnist1d-small, mnist1d-cnn-w4), validation-accuracy
points; for the surrogates (mnist1d-cnn-s, mnist1d-mbnet-s: models fitted to 20,000 live retrainings each,
their fidelity in docs/benchmark-data.md), the surrogate's validation-accuracy points.

Methods (all through `baselines.mixed_precision.solve`, library defaults, nothing tuned): random
search, a (mu + lambda) evolution, regularised (aging) evolution (Real et al., AAAI 2019; P = 100,
S = 25), Optuna's TPE and CMA-ES, two greedy allocations, HAWQ-V3's integer program (on HAWQ-V3's
tables its objective is the table; on the generated tables from Hessian traces of the
table's float network shipped beside the table: one evaluation), and the widest uniform width. A
suggestion over the budget is projected onto the feasible set by the exact masks and the projection
is what is evaluated and counted (random search samples feasible policies directly).

RL agents, marked "(RL agent)": MaskablePPO (sb3-contrib), PPO (stable-baselines3; ReLeQ's
algorithm) and DDPG-HAQ (HAQ's agent on stable-baselines3's DDPG, `agents/ddpg_haq.py`), each seed
one `train.py` run at the instance, MaskablePPO and PPO on `quant_envs/MixedPrecisionTable-v0`,
DDPG-HAQ on `quant_envs/MixedPrecisionTableContinuous-v0` (the same table and exact masks, HAQ's
`Box(0, 1, (1,))` action mapped onto the allowed widths), with the hyperparameters of
`agents/hyperparams/` as they are (the table environments have no entry of their own, so each
file's `default`: MaskablePPO n_steps 256, batch 64, 10 epochs, lr 3e-4, gamma 1, ent_coef 0.01,
[64, 64]; PPO the same but gamma 0.99 and ent_coef 0; DDPG-HAQ HAQ's published values: actor and
critic [300, 300], Adam lr 1e-4 / 1e-3, tau 0.01, gamma 1, batch 64, a replay buffer of 128
transitions per unit, 20 random warm-up episodes, truncated-normal exploration sigma 0.5 decayed
x0.99 per episode, a moving-average reward baseline; nothing tuned).
PPO does not read the masks: a masked action is projected to the nearest allowed width by the
environment (`invalid_action="project"`, counted per episode), so every policy it evaluates is
within budget too. An evaluation is an episode whose `info["cached"]` is False (a policy the
environment answered before is free); a run stops at the allowance or after 5 episodes per allowed
evaluation, whichever comes first (a converged agent repeats its policy; a table may hold fewer
feasible policies than the allowance), and its best policy after n evaluations is scored, filed and
replayed as the baselines' are (on `quant_envs/MixedPrecisionTable-v0`, whichever environment
found it). To submit a result see `SUBMISSION.md`.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.leaderboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("leaderboard"), help="folder of the run CSVs and policy files")
    parser.add_argument("--markdown", type=Path, default=Path("LEADERBOARD.md"))
    parser.add_argument("--methods", nargs="*", default=list(LEADERBOARD_METHODS + AGENT_METHODS),
                        help=f"baselines ({', '.join(LEADERBOARD_METHODS)}) and RL agents ({', '.join(AGENT_METHODS)}); "
                             f"the Pareto track runs {', '.join(PARETO_METHODS)} and those of "
                             f"{', '.join(PARETO_AGENT_METHODS)} named here")
    parser.add_argument("--tables", nargs="*", default=None, help="only these tables' settings (default: all)")
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1")
    parser.add_argument("--max-evaluations", type=int, default=1000)
    parser.add_argument("--cap", nargs="*", default=[], metavar="METHOD=N",
                        help="a smaller allowance for a method (e.g. tpe=300 where TPE's cost per trial does not fit)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--force", action="store_true",
                        help="rerun every seed asked for (by default a seed the CSV holds at this allowance is kept)")
    parser.add_argument("--figures", type=Path, default=Path("docs/figures/leaderboard"),
                        help="folder of the figures (under docs/ so that the documentation site shows them)")
    parser.add_argument("--no-run", action="store_true", help="only regenerate the markdown and figures")
    parser.add_argument("--tracks", nargs="+", choices=TRACKS, default=list(TRACKS),
                        help="which tracks' missing runs to run: the budgeted regret track, the Pareto track, or both")
    args = parser.parse_args(argv)

    for m in args.methods:
        if m not in METHODS and m not in AGENT_METHODS:
            parser.error(f"--methods: {m!r} is not allowed; expected some of {list(METHODS) + list(AGENT_METHODS)}")
    caps = {}
    for c in args.cap:
        m, _, n = c.partition("=")
        if m not in args.methods or not n.isdigit():
            parser.error(f"--cap {c!r}: expected METHOD=N with METHOD among --methods")
        caps[m] = int(n)
    command = "python -m agents.leaderboard " + shlex.join(argv if argv is not None else sys.argv[1:])
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    if not args.no_run:
        jobs: list[Any] = []
        for setting in LEADERBOARD_SETTINGS:
            if args.tables and setting["table"] not in args.tables or "regret" not in args.tracks:
                continue
            for m in args.methods:
                allowance = caps.get(m, args.max_evaluations)
                if args.force or missing_seeds(run_csv(args.out, setting, m), seeds, allowance):
                    jobs.append((run_job, (setting, m, seeds, allowance, str(args.out), not args.force)))
        for table, hw, metric in pareto_instances():
            if args.tables and table not in args.tables or "pareto" not in args.tracks:
                continue
            for m in PARETO_METHODS + tuple(a for a in PARETO_AGENT_METHODS if a in args.methods):
                allowance = caps.get(m, args.max_evaluations)
                if args.force or missing_seeds(pareto_folder(args.out, table, hw, metric) / f"{m}.csv", seeds,
                                               allowance):
                    jobs.append((pareto_job, (table, hw, metric, m, seeds, allowance, str(args.out), not args.force)))
        print(f"{len(jobs)} jobs to run on {args.workers} workers", flush=True)
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = [pool.submit(fn, job) for fn, job in jobs]
            for f in futures:
                path, wall = f.result()
                print(f"  {path}: {wall:.1f} s", flush=True)
    commands = record_command(args.out, command) if not args.no_run else read_commands(args.out) or [command]
    generate(args.out, args.markdown, args.methods, "\n".join(commands), args.workers, args.figures)
    print(f"wrote {args.markdown} and {args.figures} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
