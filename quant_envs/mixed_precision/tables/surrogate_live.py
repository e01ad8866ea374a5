"""A surrogate's optimum checked live: is the policy it calls best as good when retrained?

For an instance (hardware, budget metric, budget level), the surrogate's exact optimum
(:mod:`~quant_envs.mixed_precision.tables.surrogate_optimum`: enumeration up to
:data:`ENUMERATION_LIMIT` policies, the integer program beyond) is retrained live under several
retraining seeds with the training data's task and recipe. It passes where the mean live accuracy
lands within ``max(0.5 points, 2 x noise)`` of the surrogate's value and is no worse than the best
live-sampled feasible policy of that instance minus the noise (the surrogate found something at
least as good as its own training data holds).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from quant_envs.mixed_precision.problem import RELATIVE_SLACK
from quant_envs.mixed_precision.tables import build
from quant_envs.mixed_precision.tables.costs import hw_sim_costs
from quant_envs.mixed_precision.tables.live import live_problem
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.scenarios import instances
from quant_envs.mixed_precision.tables.surrogate import SurrogateTable
from quant_envs.mixed_precision.tables.surrogate_optimum import enumerate_optimum, milp_optimum
from quant_envs.mixed_precision.tables.training_data import training_samples

#: Largest grid whose optimum is found by enumeration here (8 units x 7 widths: 5.8M).
ENUMERATION_LIMIT = 1 << 23


@dataclass(frozen=True)
class LiveCheck:
    hardware: str
    metric: str
    level: float
    policy: list[int]
    method: str
    surrogate: float  # accuracy points
    live: list[float]  # accuracy points, one per retraining seed
    best_sampled: float | None  # the best live-sampled feasible policy's accuracy (points)
    tolerance: float
    close: bool  # |mean live - surrogate| <= tolerance
    not_worse: bool | None  # mean live >= best sampled - noise

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_check(model: SurrogateTable, samples: dict[str, Any], hardware: str, metric: str, level: float,
               seeds: tuple[int, ...] = (0, 1, 2), noise: float = 0.21) -> LiveCheck:
    """Retrain ``model``'s optimum at one instance under ``seeds``; ``samples`` is the live set
    (:func:`~quant_envs.mixed_precision.tables.surrogate.load_training_set`) it was fitted to."""
    src = model.meta["source"]
    config = {"task": src["task"], "bits": list(model.bits), "finetune_steps": int(src["finetune_steps"]),
              "task_seed": int(src.get("task_seed") or 0)}
    problems = [build.config_problem({**config, "eval_seed": s}) for s in seeds]
    costs, _ = hw_sim_costs(build.hw_layer_shapes(problems[0]), model.bits)
    cost = costs[hardware][metric]
    lo, hi = cost.min(axis=1).sum(), cost.max(axis=1).sum()
    budget = float(lo + level * (hi - lo))
    grid = len(model.bits) ** model.num_units
    opt = enumerate_optimum(model, cost, budget) if grid <= ENUMERATION_LIMIT else milp_optimum(model, cost, budget)
    widths = [model.bits[k] for k in opt.index]
    live = [100 * build.evaluate_policy(p, widths)[0] for p in problems]
    feasible = cost[np.arange(model.num_units), samples["idx"]].sum(axis=1) <= budget * (1 + RELATIVE_SLACK)
    return _verdict(hardware, metric, level, widths, opt.method, 100 * opt.score, live, samples["y"][feasible], noise)


def _verdict(hardware: str, metric: str, level: float, widths: list[int], method: str, value: float,
             live: list[float], feasible_sampled: np.ndarray, noise: float) -> LiveCheck:
    """The check of one instance: ``value`` (points) and its ``live`` retrainings against the
    tolerance and against the best of the ``feasible_sampled`` accuracies (0..1; may be empty)."""
    best = float(100 * feasible_sampled.max()) if len(feasible_sampled) else None
    tol, mean = max(0.5, 2 * noise), float(np.mean(live))
    return LiveCheck(hardware, metric, level, widths, method, value, live, best, tol, abs(mean - value) <= tol,
                     None if best is None else mean >= best - noise)


def table_live_checks(table: Any, seeds: tuple[int, ...] = (0, 1, 2), noise: float = 0.21,
                      hardware: str | None = None) -> list[LiveCheck]:
    """:func:`live_check` at every instance of a shipped surrogate table's grid (or of one
    ``hardware``): its optimum (the one the environment's regret uses) retrained from the table's
    own float network under ``seeds``, beside the best feasible policy of its live training set."""
    samples = training_samples(table)
    problems = [live_problem(table, eval_seed=s) for s in seeds]
    units = np.arange(table.num_units)
    out = []
    for inst in instances(table):
        if hardware is not None and inst["hardware"] != hardware:
            continue
        p = TableProblem(table, **inst)
        widths = [table.bits[k] for k in p.optimum.index]
        live = [100 * build.evaluate_policy(q, widths)[0] for q in problems]
        feasible = p.unit_cost[units, samples["idx"].astype(int)].sum(axis=1) <= p.limit
        out.append(_verdict(inst["hardware"], inst["budget_metric"], inst["budget_level"], widths, p.optimum.method,
                            100 * p.optimum.score, live, samples["val_accuracy"][feasible], noise))
    return out
