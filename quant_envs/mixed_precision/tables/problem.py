"""The model of a table benchmark: a :class:`PolicyTable` + hardware + budget, with exact masks.

:class:`TableProblem` answers the interface of
:class:`~quant_envs.mixed_precision.problem.MixedPrecisionProblem` that the environments and the
baselines use (``bits``, ``num_layers``, ``layer_costs``, ``min_completion``, ``allowed_pairs``,
``cost``, ``is_feasible``, ``evaluate``, ...), so ``baselines.mixed_precision.solve`` runs on it
unchanged, but every evaluation is a table look-up. A "layer" here is one of the table's decision
units (tied layers share one), and each takes one width for weights and activations alike.

The exact mask (:meth:`TableProblem.step_mask`) is written here once: a width of unit ``i`` is
allowed iff ``spent + cost_i(b) + min completion of the units after i <= budget`` (with the
problem's relative slack), i.e. iff some completion fits.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.mixed_precision.policy_evaluator import EvaluationCache
from quant_envs.mixed_precision.problem import (
    RELATIVE_SLACK,
    Evaluation,
    MixedPrecisionProblem,
    Policy,
    metric_fields,
)
from quant_envs.mixed_precision.tables.fidelity import at_fidelity, eval_cost_cpu_s
from quant_envs.mixed_precision.tables.policy_table import PolicyTable
from quant_envs.mixed_precision.tables.reference import TableOptimum, exact_optimum
from quant_envs.mixed_precision.tables.registry import load_table


@dataclass(frozen=True)
class TableEvaluation(Evaluation):
    """An :class:`Evaluation` read from a table. ``accuracy`` holds the table's score (validation
    accuracy for accuracy tables, minus HAWQ's perturbation for HAWQ's); ``regret`` is
    ``score_scale * (optimum - score)`` in the table's ``regret_unit``; ``costs`` every metric of the
    table's hardware (``bops`` included) and ``columns`` its extra columns (e.g. test accuracy);
    ``table_digest`` the table's version (:attr:`PolicyTable.digest`); ``eval_cost_cpu_s`` the CPU
    seconds one live evaluation costs at the table's fidelity (NaN where not recorded)."""

    score: float = math.nan
    regret: float = math.nan
    optimum_score: float = math.nan
    budget_cost: float = math.nan
    costs: dict[str, float] = field(default_factory=dict)
    columns: dict[str, float] = field(default_factory=dict)
    table_digest: str = ""
    eval_cost_cpu_s: float = math.nan


class TableProblem(MixedPrecisionProblem):
    """A table benchmark at one hardware, budget metric and budget.

    Args:
        table: a registered table name (``quant_envs.mixed_precision.tables.registry.TABLES``), a path to an
            ``.npz`` table, or a :class:`PolicyTable`.
        hardware: one of the table's hardware (default: the table's).
        budget_metric: one of the hardware's metrics (default: the table's default budget's).
        budget_fraction: budget as a fraction of the all-widest cost, or
        budget_level: HAWQ-V3's level ``x``: ``cost(all-narrowest) + x * (cost(all-widest) -
            cost(all-narrowest))``, or
        budget: an absolute budget in the metric's unit. At most one of the three; none: the
            table's default (HAWQ: level 0.5; digits-cnn: fraction 0.4).
        cache_size: policies remembered for counting distinct evaluations (``num_evaluations``).
        fidelity: retraining steps of the scores (one of those the table holds,
            :func:`~quant_envs.mixed_precision.tables.fidelity.fidelities`); None: the table's default.
    """

    def __init__(self, table: str | PolicyTable = "hawq-resnet18", hardware: str | None = None,
                 budget_metric: str | None = None, budget_fraction: float | None = None,
                 budget_level: float | None = None, budget: float | None = None,
                 cache_size: int = 1 << 16, fidelity: int | None = None) -> None:
        self.table = at_fidelity(table if isinstance(table, PolicyTable) else load_table(table), fidelity)
        t = self.table
        cpu = eval_cost_cpu_s(t)
        self.eval_cost_cpu_s = math.nan if cpu is None else cpu
        self.hardware = check_choice("hardware", t.default_hardware if hardware is None else hardware, t.hardware)
        default = dict(t.default_budget)
        self.budget_metric = check_choice("budget_metric", default.get("metric") if budget_metric is None
                                          else budget_metric, t.metrics(self.hardware))
        self.bits = tuple(t.bits)
        self.num_layers = t.num_units
        self.layers = t.layers
        self.weight_std = np.asarray(t.weight_std, dtype=float)
        self.keep_first_last_8bit = False
        self.finetune_steps = int(t.meta.get("finetune_steps", 0))
        self.eval_split = "val"
        self.eval_seed = int(t.meta.get("eval_seed", 0))
        self.cache_size = check_int("cache_size", cache_size, min_value=0)
        nb = len(self.bits)
        self.allowed = np.broadcast_to(np.eye(nb, dtype=bool), (self.num_layers, nb, nb))  # one width per unit
        self._metric_tables = {m: np.asarray(a, dtype=float) for m, a in t.costs[self.hardware].items()}
        self.metrics = tuple(self._metric_tables)
        cost = self._metric_tables[self.budget_metric]
        self.unit_cost = cost  # [units, bits] in the budget metric
        self._rest_min = np.concatenate([np.cumsum(cost.min(axis=1)[::-1])[::-1], [0.0]])
        self.reference_cost = {m: float(a[:, -1].sum()) for m, a in self._metric_tables.items()}  # all-widest
        self.min_cost = float(self._rest_min[0])
        lo, hi = self.min_cost, float(cost.max(axis=1).sum())
        given = {k: v for k, v in (("budget_fraction", budget_fraction), ("budget_level", budget_level),
                                   ("budget", budget)) if v is not None}
        if len(given) > 1:
            raise ValueError(f"pass at most one of budget_fraction, budget_level, budget; got {sorted(given)}")
        if not given:
            given = {f"budget_{k}": v for k, v in default.items() if k in ("fraction", "level")}
        (kind, value), = given.items()
        if isinstance(value, str):
            raise TypeError(f"{kind}={value!r} must be a number, got str")
        value = check_float(kind, value, min_value=0.0, min_inclusive=kind != "budget")
        self.budget = {"budget": value, "budget_fraction": value * hi, "budget_level": lo + value * (hi - lo)}[kind]
        if self.budget < self.min_cost * (1 - RELATIVE_SLACK):
            raise ValueError(
                f"{kind}={value!r} gives budget {self.budget:.6g} {t.metric_units[self.budget_metric]}, below the "
                f"cheapest policy's {self.min_cost:.6g}; feasible: budget >= {lo:.6g}, budget_fraction >= "
                f"{lo / hi:.4f}, budget_level >= 0")
        self.limit = self.budget * (1 + RELATIVE_SLACK)
        # step_mask's ``spent + cost + rest_min <= limit`` rearranged: ``spent <= threshold``
        self._threshold = self.limit - self._rest_min[1:, None] - cost
        self.optimum: TableOptimum = exact_optimum(t, cost, self.budget)
        self._evaluations = EvaluationCache(self.cache_size)  # (unit indices, split) -> TableEvaluation
        self._layer_costs: dict[str, np.ndarray] = {}

    def reset_counts(self) -> None:
        """Forget the policies seen (``num_evaluations`` and ``num_queries`` restart at 0)."""
        self._cache.clear()
        self.num_evaluations = self.num_queries = 0

    # ------------------------------------------------------------------------------- the model
    def step_mask(self, unit: int, spent: float, rest_min: float | None = None) -> np.ndarray:
        """Bool mask over ``bits`` of unit ``unit``'s widths that keep the budget reachable (exact)."""
        if rest_min is None:  # the environments' left-to-right order: one comparison per width
            return spent <= self._threshold[unit]
        return spent + self.unit_cost[unit] + rest_min <= self.limit

    def allowed_pairs(self, layer: int, spent: float, equal_bits: bool, rest_min: float | None = None) -> np.ndarray:
        return np.diag(self.step_mask(layer, spent, rest_min))

    def min_completion(self, metric: str, equal_bits: bool) -> np.ndarray:
        if metric == self.budget_metric:
            return self._rest_min
        a = self._metric_tables[check_choice("metric", metric, self.metrics)]
        return np.concatenate([np.cumsum(a.min(axis=1)[::-1])[::-1], [0.0]])

    def layer_costs(self, metric: str) -> np.ndarray:
        """[units, bits, bits]: the metric's cost on the diagonal (w == a), infinite elsewhere."""
        metric = check_choice("metric", metric, self.metrics)
        if metric not in self._layer_costs:
            a = self._metric_tables[metric]
            nb = len(self.bits)
            grid = np.full((self.num_layers, nb, nb), np.inf)
            grid[:, np.arange(nb), np.arange(nb)] = a
            self._layer_costs[metric] = grid
        return self._layer_costs[metric]

    def indices(self, policy: Sequence[Sequence[int]] | Sequence[int]) -> np.ndarray:
        """Width indices of ``policy``: (w, a) pairs with w == a, or one width per unit."""
        try:
            widths = [p if isinstance(p, (int, np.integer)) else _equal_pair(p) for p in policy]
            idx = np.array([self.bits.index(int(b)) for b in widths])
        except (TypeError, ValueError):
            raise ValueError(f"policy={policy!r} is not allowed; expected {self.num_layers} widths (or (w, w) pairs) "
                             f"from {list(self.bits)}") from None
        if len(idx) != self.num_layers:
            raise ValueError(f"policy has {len(idx)} entries; table {self.table.name!r} has {self.num_layers} units")
        return idx

    def check_policy(self, policy: Sequence[Sequence[int]]) -> Policy:
        return self.policy_of(self.indices(policy))

    def policy_of(self, idx: Sequence[int] | np.ndarray) -> Policy:
        return tuple((self.bits[k], self.bits[k]) for k in idx)

    def cost(self, policy: Policy) -> dict[str, float]:
        return self.costs_of(self.indices(policy))

    def costs_of(self, idx: np.ndarray) -> dict[str, float]:
        units = np.arange(self.num_layers)
        return {m: float(a[units, idx].sum()) for m, a in self._metric_tables.items()}

    def budget_fractions(self, costs: dict[str, float]) -> dict[str, float]:
        return {m: costs[m] / self.reference_cost[m] for m in costs}

    def float_accuracy(self, split: str | None = None) -> float:
        return self.table.score_offset

    def regret(self, score: float) -> float:
        """``score_scale * (optimum - score)``: the regret in the table's ``regret_unit`` (float
        round-off of summed scores can put an equal-scoring policy a few ulps above the optimum:
        clipped at 0)."""
        return max(0.0, self.table.score_scale * (self.optimum.score - score))

    # ------------------------------------------------------------------------------ evaluation
    def evaluate(self, policy: Sequence[Sequence[int]], finetune_steps: int | None = None,
                 split: str | None = None) -> TableEvaluation:
        """The table's entry of ``policy`` (``split="test"`` reads the ``test_accuracy`` column).

        ``finetune_steps`` is checked but not used: a table has one fidelity (its ``finetune_steps``).
        """
        if finetune_steps is not None:
            check_int("finetune_steps", finetune_steps, min_value=0)
        split = "val" if split is None else check_choice("split", split, ("val", "test"))
        return self.evaluate_indices(self.indices(policy), split)

    def evaluate_indices(self, idx: np.ndarray, split: str = "val") -> TableEvaluation:
        key = (tuple(idx.tolist()), split)
        hit = self._recall(key)
        if hit is not None:  # a policy seen before: no new evaluation (as MixedPrecision-v0's cache)
            return dataclasses.replace(hit, cached=True)
        t = self.table
        if split == "test":
            if "test_accuracy" not in t.columns:
                raise ValueError(f"split='test' is not allowed: table {t.name!r} has no test_accuracy column")
            score = float(t.columns["test_accuracy"].reshape(-1)[t.flat_index(idx)])
        else:
            score = float(t.scores(idx))
        costs = self.costs_of(idx)
        columns = {} if t.separable else {k: float(a.reshape(-1)[t.flat_index(idx)]) for k, a in t.columns.items()}
        used = costs[self.budget_metric] / self.budget
        result = TableEvaluation(
            policy=self.policy_of(idx), accuracy=score, float_accuracy=t.score_offset,
            budget_metric=self.budget_metric, budget=self.budget, budget_used=used,
            **metric_fields(costs, self.budget_fractions(costs)),  # NaN for metrics the table lacks
            finetune_steps=self.finetune_steps, split=split, eval_time_s=0.0, cached=False,
            score=score, regret=self.regret(score), optimum_score=self.optimum.score,
            budget_cost=costs[self.budget_metric], costs=costs, columns=columns, table_digest=t.digest,
            eval_cost_cpu_s=self.eval_cost_cpu_s,
        )
        return self._remember(key, result)

    @property
    def task(self) -> Any:
        raise ValueError(f"table {self.table.name!r} holds no network (evaluations are look-ups): methods that "
                         f"need the model itself (live Hessian traces, retraining) cannot run on a table; "
                         f"hawq_v3 on a table reads the traces shipped with it")

    def fake_quant_model(self) -> Any:
        return self.task


def _equal_pair(pair: Sequence[int]) -> int:
    w, a = pair
    if int(w) != int(a):
        raise ValueError(f"({w}, {a})")
    return int(w)
