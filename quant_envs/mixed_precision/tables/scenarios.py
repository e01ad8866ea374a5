"""The table benchmark's scenarios and instances, and whether each instance separates methods.

A *scenario* is a registered table (a network and its width set, :data:`~.registry.TABLES`); an
*instance* is a scenario with a hardware profile, a budget metric and a budget level (HAWQ-V3's
``cost(all-narrowest) + level * (cost(all-widest) - cost(all-narrowest))``, feasible at every
level). :func:`instances` lists a scenario's grid: every hardware the table prices x every metric
it has x :data:`LEVELS`.

An instance separates search methods only where random search does not find its optimum anyway.
:func:`random_search_regret` gives, in closed form (:func:`~.reference.best_of_n_moments`), the
mean and standard deviation of random search's regret after ``n`` distinct feasible policies and
the probability that it has found an optimal one; where the mean is below the retraining-seed
noise the instance is saturated. Printed for every instance by::

    python -m quant_envs.mixed_precision.tables.scenarios --tables mnist1d-cnn-w4 --evaluations 1000
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quant_envs.mixed_precision.tables.fidelity import fidelities
from quant_envs.mixed_precision.tables.policy_table import PolicyTable
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.reference import best_of_n_moments
from quant_envs.mixed_precision.tables.registry import TABLES, load_table

__all__ = ["LEVELS", "NOISE", "SIMULATED_SEEDS", "InstanceFacts", "instance_facts", "instances", "random_search_regret",
           "simulated_random_regret"]

#: The budget levels of every scenario's instance grid.
LEVELS = (0.1, 0.25, 0.5)
#: Retraining-seed noise of the live reward, accuracy points (``benchmarks/bench_reward_noise.py``,
#: mnist1d-cnn's recipe): an instance whose random-search regret is below it is saturated.
NOISE = 0.21


def instances(table: PolicyTable | str, levels: Sequence[float] = LEVELS) -> list[dict[str, Any]]:
    """Every (hardware, budget metric, budget level) of ``table`` as ``TableProblem`` keyword
    arguments: each hardware it prices x each metric that hardware has x ``levels``."""
    t = load_table(table) if isinstance(table, str) else table
    return [{"hardware": hw, "budget_metric": metric, "budget_level": float(level)}
            for hw in t.hardware for metric in t.metrics(hw) for level in levels]


def random_search_regret(problem: TableProblem, evaluations: int) -> tuple[float, float, float]:
    """Random search after ``evaluations`` distinct uniform feasible policies: mean and standard
    deviation of its regret (table units) and the probability it has found an optimum. Where the
    instance cannot be enumerated (its feasible set is not listed), the same three figures are
    estimated by :func:`simulated_random_regret` (:data:`SIMULATED_SEEDS` seeds) instead."""
    scores = problem.optimum.feasible_scores
    if scores is None:
        return simulated_random_regret(problem, evaluations)
    mean, sd = best_of_n_moments(scores, evaluations)
    scale = problem.table.score_scale
    n, m = len(scores), min(evaluations, len(scores))
    ties = int(np.sum(scores >= problem.optimum.score))  # optimal policies (equal scores)
    # P(no optimal policy among m of n drawn without replacement) = C(n - ties, m) / C(n, m)
    miss = 0.0 if n - ties < m else math.exp(sum(math.log((n - ties - i) / (n - i)) for i in range(m)))
    return float(scale * (problem.optimum.score - mean[0])), float(scale * sd[0]), 1.0 - miss


#: Seeds of :func:`simulated_random_regret` (the issue's study: 20 seeds of 1000 evaluations).
SIMULATED_SEEDS = 20


def simulated_random_regret(problem: TableProblem, evaluations: int, seeds: int = SIMULATED_SEEDS,
                            seed: int = 0, chunk: int = 1 << 17, max_draws: int = 1 << 27) -> tuple[float, float, float]:
    """Random search simulated where the feasible set is too large to list: ``seeds`` runs of
    ``evaluations`` uniform feasible policies each (uniform policies over the grid, the infeasible
    ones rejected; on grids of 7^12 policies repeats are negligible and are not removed). Returns
    the mean and standard deviation over runs of the regret (table units) and the share of runs
    that found an optimum; NaN for all three where the budget admits too small a share of the grid
    for ``max_draws`` uniform draws to find ``evaluations x seeds`` feasible policies (judged from
    the first ``chunk`` draws, so that such an instance costs one chunk, not ``max_draws``)."""
    t, units = problem.table, np.arange(problem.table.num_units)
    rng = np.random.default_rng(seed)
    need, draws, found = evaluations * seeds, 0, 0
    kept: list[np.ndarray] = []
    while found < need:
        idx = rng.integers(len(t.bits), size=(chunk, t.num_units))
        kept.append(idx[problem.unit_cost[units, idx].sum(axis=1) <= problem.limit])
        draws, found = draws + chunk, found + len(kept[-1])
        if draws + chunk > max_draws or (draws == chunk and found * max_draws < need * chunk):
            if found < need:
                return math.nan, math.nan, math.nan
    best = t.scores(np.concatenate(kept)[:need]).reshape(seeds, evaluations).max(axis=1)
    regret = t.score_scale * (problem.optimum.score - best)
    return float(regret.mean()), float(regret.std(ddof=1)), float(np.mean(best >= problem.optimum.score))


@dataclass(frozen=True)
class InstanceFacts:
    """One instance: its size and how hard it is for random search."""

    hardware: str
    budget_metric: str
    budget_level: float
    feasible: int | None
    optimum: float
    random_mean: float  # random search's mean regret at the given evaluations (table units)
    random_sd: float
    p_optimum: float  # probability random search has found an optimum by then

    def saturated(self, noise: float) -> bool:
        return self.random_mean < noise


def instance_facts(table: PolicyTable | str, evaluations: int = 1000, levels: Sequence[float] = LEVELS,
                   fidelity: int | None = None) -> list[InstanceFacts]:
    """:class:`InstanceFacts` of every instance of ``table`` (at ``fidelity``: None, its default)."""
    t = load_table(table) if isinstance(table, str) else table
    out = []
    for kw in instances(t, levels):
        p = TableProblem(t, fidelity=fidelity, **kw)
        mean, sd, p_opt = random_search_regret(p, evaluations)
        out.append(InstanceFacts(kw["hardware"], kw["budget_metric"], kw["budget_level"], p.optimum.num_feasible,
                                 p.optimum.score, mean, sd, p_opt))
    return out


def markdown(name: str, evaluations: int, noise: float) -> str:
    t = load_table(name)
    held: list[int | None] = [*sorted(fidelities(t))] or [None]
    size = math.prod([len(t.bits)] * t.num_units)
    lines = [f"### `{name}`", "",
             f"{t.num_units} units x widths {list(t.bits)}: {size:,} policies; score: {t.score_name}"
             f"{' (separable)' if t.separable else ''}; fidelities (retraining steps): "
             f"{', '.join(str(f) for f in held)}; digest `{t.digest[:12]}`.", ""]
    for fid in held:
        facts = instance_facts(t, evaluations, fidelity=fid)
        if fid is not None:
            lines += [f"Fidelity {fid} steps:", ""]
        lines += [f"| hardware | metric | level | feasible | optimum | random search regret @ {evaluations} "
                  f"(mean ± sd) | P(optimum found) | separates methods |", "|---|---|---|---|---|---|---|---|"]
        for f in facts:
            feasible = "-" if f.feasible is None else f"{f.feasible:,}"
            # the noise is in accuracy points: a proxy table (HAWQ-V3's) has no verdict
            judged = t.regret_unit.startswith("accuracy points") and not math.isnan(f.random_mean)
            verdict = ("no" if f.saturated(noise) else "yes") if judged else "-"
            lines.append(f"| {f.hardware} | {f.budget_metric} | {f.budget_level:g} | {feasible} | "
                         f"{t.score_scale * f.optimum:{'.2f' if t.score_scale == 100 else '.4g'}} | {f.random_mean:.3f} ± {f.random_sd:.3f} | "
                         f"{f.p_optimum:.2f} | {verdict} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quant_envs.mixed_precision.tables.scenarios",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", nargs="+", default=sorted(TABLES), help=f"scenarios (default: all, {sorted(TABLES)})")
    parser.add_argument("--evaluations", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=NOISE,
                        help="retraining-seed noise in accuracy points: a random-search regret below it is saturated")
    args = parser.parse_args(argv)
    for name in args.tables:
        if name not in TABLES:
            parser.error(f"--tables {name!r} is not allowed; expected some of {sorted(TABLES)}")
    print(f"Random search: {args.evaluations} distinct uniform feasible policies, closed form (no seeds; where the "
          f"feasible set is too large to list, simulated over {SIMULATED_SEEDS} seeds); an "
          f"instance separates methods where its mean regret is at least the retraining noise, {args.noise} points. "
          "Regret and optimum in the table's unit (accuracy points for the generated tables).\n")
    for name in args.tables:
        print(markdown(name, args.evaluations, args.noise))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
