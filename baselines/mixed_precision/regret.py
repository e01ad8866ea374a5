"""Regret study on a table benchmark: every baseline over many seeds, scored against the exact optimum.

Each (method, seed) runs :func:`baselines.mixed_precision.solve` on a
:class:`~quant_envs.mixed_precision.tables.problem.TableProblem` with ``max_evaluations`` reward
evaluations (table look-ups); its history is a run record (:mod:`quant_envs.mixed_precision.tables.regret`), and the study
reports best-so-far regret after 10, 30, 100, 300, 1000 evaluations (mean and 95% CI over seeds),
random search's closed-form expectation where the feasible set is enumerated, and draws the
curves. Command line (20 seeds x 1000 evaluations of every method: about 30 CPU-seconds on
HAWQ-V3's ResNet-18 table, evolution's repairs being most of it)::
    python -m baselines.mixed_precision.regret --table hawq-resnet18 --budget-metric latency --budget-level 0.5
    python -m baselines.mixed_precision.regret --table digits-cnn --out results/regret-digits
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from baselines.mixed_precision.solvers import SearchResult, solve
from quant_envs.atomic_io import atomic_write_json, atomic_write_text
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.reference import best_of_n_moments
from quant_envs.mixed_precision.tables.regret import (
    CHECKPOINTS,
    RunRecord,
    plot_regret,
    regret_curves,
    summarize,
)

#: The regret study's default methods (the quick ones; the leaderboard's full list, with hawq_v3 from
#: the traces shipped with a table and Optuna's samplers, is
#: ``agents.leaderboard.LEADERBOARD_METHODS``; enumeration needs all of a table).
TABLE_METHODS = ("random", "evolution", "greedy_std", "greedy_sensitivity", "uniform")


def run_record(result: SearchResult, problem: TableProblem) -> RunRecord:
    """The scores ``result`` evaluated, in order, and which were within ``problem``'s budget."""
    scores = [acc for _, acc, _ in result.history]
    feasible = [cost <= problem.limit for _, _, cost in result.history]
    return RunRecord.of(scores, feasible)


@dataclass
class MethodRuns:
    method: str
    curves: np.ndarray  # [seeds, max_evaluations] best-so-far regret
    wall_time_s: float  # all seeds together
    final: list[float] = field(default_factory=list)  # each seed's answer's regret
    evaluations: list[int] = field(default_factory=list)


@dataclass
class RegretStudy:
    problem: TableProblem
    max_evaluations: int
    seeds: list[int]
    runs: dict[str, MethodRuns]

    @property
    def unit(self) -> str:
        return self.problem.table.regret_unit

    def random_expectation(self, checkpoints: Sequence[int] = CHECKPOINTS) -> dict[int, float] | None:
        """Closed-form expected regret of random search (best of n distinct uniform feasible
        policies), or None where the feasible set is not enumerated."""
        moments = self.random_moments(checkpoints)
        return None if moments is None else {n: m for n, (m, _) in moments.items()}

    def random_moments(self, checkpoints: Sequence[int] = CHECKPOINTS) -> dict[int, tuple[float, float]] | None:
        """Closed-form (mean, standard deviation) of random search's regret after n evaluations."""
        o = self.problem.optimum
        if o.feasible_scores is None:
            return None
        ns = [n for n in checkpoints if n <= self.max_evaluations]
        mean, sd = best_of_n_moments(o.feasible_scores, np.asarray(ns))
        scale = self.problem.table.score_scale
        return {n: (scale * (o.score - m), scale * d) for n, m, d in zip(ns, mean, sd)}

    def random_check(self, level: float = 0.95) -> dict[int, dict[str, float | bool]] | None:
        """Measured mean regret of ``random`` against the closed form at every checkpoint: inside
        ``E +- t * sd / sqrt(seeds)``, the interval the mean over the seeds falls in with
        probability ``level`` (sd of the best-of-n distribution, exact)."""
        moments = self.random_moments()
        if moments is None or "random" not in self.runs:
            return None
        curves = self.runs["random"].curves
        k = curves.shape[0]
        t = float(stats.t.ppf(0.5 + level / 2, max(k - 1, 1)))
        out = {}
        for n, (mean, sd) in moments.items():
            measured = float(curves[:, n - 1].mean())
            half = t * sd / np.sqrt(k)
            out[n] = {"measured": measured, "expected": mean, "half_width": half,
                      "inside": bool(abs(measured - mean) <= half)}
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per method: mean [95% CI] regret at every checkpoint, wall time."""
        out = []
        for name, r in self.runs.items():
            row: dict[str, Any] = {"method": name, "seeds": len(self.seeds), "wall_time_s": r.wall_time_s}
            for p in summarize(r.curves):
                row[f"regret@{p.n}"] = (p.mean, p.low, p.high)
            out.append(row)
        return out

    def describe(self) -> str:
        p = self.problem
        t = p.table
        return (f"{t.name}, hardware {p.hardware}, budget {p.budget_metric} <= {p.budget:.6g} "
                f"{t.metric_units[p.budget_metric]} ({p.budget / p.reference_cost[p.budget_metric]:.3f} of all-"
                f"{max(t.bits)}-bit); optimum score {p.optimum.score:.6g} ({p.optimum.method})")

    def markdown(self, command: str = "") -> str:
        ns = [n for n in CHECKPOINTS if n <= self.max_evaluations]
        lines = [f"| method | {' | '.join(f'regret @ {n}' for n in ns)} | wall time, {len(self.seeds)} seeds (s) |",
                 "|---" * (len(ns) + 2) + "|"]
        for row in self.rows():
            cells = [f"{row[f'regret@{n}'][0]:.4g} [{row[f'regret@{n}'][1]:.3g}, {row[f'regret@{n}'][2]:.3g}]"
                     for n in ns]
            lines.append(f"| {row['method']} | {' | '.join(cells)} | {row['wall_time_s']:.1f} |")
        exp = self.random_expectation()
        if exp:
            lines.append(f"| random (closed form) | {' | '.join(f'{exp[n]:.4g}' for n in ns)} | - |")
        if command:
            lines += ["", f"Reproduce: `{command}`"]
        return "\n".join(lines)


def regret_study(problem: TableProblem, methods: Sequence[str] = TABLE_METHODS, seeds: Sequence[int] = range(20),
                 max_evaluations: int = 1000) -> RegretStudy:
    """Run every method for every seed on ``problem`` and collect best-so-far regret curves."""
    o = problem.optimum
    scale = problem.table.score_scale
    runs: dict[str, MethodRuns] = {}
    for method in methods:
        records, final, evals = [], [], []
        start = time.perf_counter()
        for seed in seeds:
            problem.reset_counts()
            result = solve(problem, method, max_evaluations=max_evaluations, seed=int(seed))
            records.append(run_record(result, problem))
            final.append(problem.regret(result.accuracy))
            evals.append(len(result.history))
        wall = time.perf_counter() - start
        curves = regret_curves(records, o.score, o.worst_score, max_evaluations, scale)
        runs[method] = MethodRuns(method, curves, wall, final, evals)
    return RegretStudy(problem, max_evaluations, list(map(int, seeds)), runs)


#: The leaderboard's (table, budget) settings: HAWQ-V3's own levels and the digits CNN's default.
LEADERBOARD_SETTINGS: tuple[dict[str, Any], ...] = (
    {"table": "hawq-resnet18", "budget_metric": "latency", "budget_level": 0.5},
    {"table": "hawq-resnet18", "budget_metric": "size", "budget_level": 0.25},
    {"table": "hawq-resnet18", "budget_metric": "bops", "budget_level": 0.75},
    {"table": "hawq-resnet50", "budget_metric": "latency", "budget_level": 0.5},
    {"table": "hawq-resnet50", "budget_metric": "size", "budget_level": 0.25},
    {"table": "digits-cnn", "hardware": "bismo-edge", "budget_metric": "latency", "budget_fraction": 0.5},
    {"table": "digits-cnn", "hardware": "bitfusion", "budget_metric": "energy", "budget_fraction": 0.85},
    {"table": "mnist1d-small", "hardware": "bismo-edge", "budget_metric": "latency", "budget_fraction": 0.25},
    # the two of its 45 instances where random search's regret after 1000 evaluations is at least the
    # retraining noise (python -m quant_envs.mixed_precision.tables.scenarios): the others hardly separate methods
    {"table": "mnist1d-cnn-w4", "hardware": "bismo-edge", "budget_metric": "latency", "budget_level": 0.25},
    {"table": "mnist1d-cnn-w4", "hardware": "bismo-cloud", "budget_metric": "latency", "budget_level": 0.25},
    # the 5.8M-policy surrogate: its default instance and the w4 table's second, two of the four of its
    # 45 where random search's regret after 1000 evaluations is at least the retraining noise
    {"table": "mnist1d-cnn-s", "hardware": "bismo-edge", "budget_metric": "latency", "budget_level": 0.1},
    {"table": "mnist1d-cnn-s", "hardware": "bismo-cloud", "budget_metric": "latency", "budget_level": 0.25},
    # the 12-layer surrogate: its default instance and the same budget on bismo-cloud (random search's
    # simulated regret after 1000 evaluations: 1.1 and 2.6 points, far above the noise)
    {"table": "mnist1d-mbnet-s", "hardware": "bismo-edge", "budget_metric": "latency", "budget_level": 0.25},
    {"table": "mnist1d-mbnet-s", "hardware": "bismo-cloud", "budget_metric": "latency", "budget_level": 0.25},
)


def setting_flags(setting: dict[str, Any]) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in setting.items())


def leaderboard_section(study: RegretStudy, setting: dict[str, Any]) -> str:
    """One leaderboard table: method, final regret at 100 and 1000 evaluations, wall time, command."""
    seeds = len(study.seeds)
    lines = [f"### {setting_flags(setting)}", "", study.describe() + ".", "",
             f"| method | regret @ 100 (mean [95% CI], {seeds} seeds) | regret @ 1000 | wall time, {seeds} seeds (s) "
             f"| command |", "|---|---|---|---|---|"]
    by_method = {r["method"]: r for r in study.rows()}
    for name, row in sorted(by_method.items(), key=lambda kv: (kv[1].get("regret@1000", (np.inf,))[0],
                                                              kv[1].get("regret@100", (np.inf,))[0])):
        cells = []
        for n in (100, 1000):
            m, lo, hi = row.get(f"regret@{n}", (np.nan,) * 3)
            cells.append(f"{m:.4g} [{lo:.3g}, {hi:.3g}]")
        cmd = (f"`python -m baselines.mixed_precision.regret {setting_flags(setting)} --methods {name} "
               f"--seeds {seeds} --max-evaluations {study.max_evaluations}`")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {row['wall_time_s']:.1f} | {cmd} |")
    expected = study.random_expectation((100, 1000))
    if expected:
        lines.append(f"| random search, closed form | {expected.get(100, np.nan):.4g} | "
                     f"{expected.get(1000, np.nan):.4g} | - | (expected best of n distinct uniform feasible policies) |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.mixed_precision.regret", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", default="hawq-resnet18")
    parser.add_argument("--hardware", default=None)
    parser.add_argument("--budget-metric", default=None)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget-level", type=float, default=None)
    budget.add_argument("--budget-fraction", type=float, default=None)
    budget.add_argument("--budget", type=float, default=None)
    parser.add_argument("--methods", nargs="*", default=list(TABLE_METHODS))
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1")
    parser.add_argument("--max-evaluations", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="directory for regret.json and regret.png")
    parser.add_argument("--leaderboard", type=Path, default=None,
                        help="run every LEADERBOARD_SETTINGS setting and write the leaderboard's tables here "
                             "(markdown; an existing file keeps its text up to '## Results'); --table and the "
                             "budget flags are ignored; LEADERBOARD.md itself is generated from run CSVs by "
                             "python -m agents.leaderboard")
    args = parser.parse_args(argv)
    if args.leaderboard is not None:
        return _write_leaderboard(args)
    try:
        problem = TableProblem(args.table, hardware=args.hardware, budget_metric=args.budget_metric,
                               budget_fraction=args.budget_fraction, budget_level=args.budget_level,
                               budget=args.budget)
        study = regret_study(problem, args.methods, range(args.seeds), args.max_evaluations)
    except (TypeError, ValueError) as e:
        parser.error(str(e))
    print(study.describe())
    print(study.markdown())
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out / "regret.json", {
            "setting": study.describe(), "unit": study.unit, "seeds": study.seeds,
            "max_evaluations": study.max_evaluations, "rows": study.rows(),
            "random_closed_form": study.random_expectation(),
            "final_regret": {m: r.final for m, r in study.runs.items()},
        })
        plot_regret({m: r.curves for m, r in study.runs.items()}, args.out / "regret.png", study.unit,
                    title=study.describe())
        print(f"wrote {args.out / 'regret.json'} and {args.out / 'regret.png'}")
    return 0



def _write_leaderboard(args: argparse.Namespace) -> int:
    sections = []
    for setting in LEADERBOARD_SETTINGS:
        problem = TableProblem(**setting)
        study = regret_study(problem, args.methods, range(args.seeds), args.max_evaluations)
        sections.append(leaderboard_section(study, setting))
        print(sections[-1], "\n", flush=True)
    head = ""
    marker = "## Results\n"
    if args.leaderboard.exists():  # keep the hand-written part above the results
        text = args.leaderboard.read_text()
        if marker in text:
            head = text[:text.index(marker) + len(marker)] + "\n"
    atomic_write_text(args.leaderboard, head + "\n\n".join(sections) + "\n")
    print(f"wrote {args.leaderboard}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
