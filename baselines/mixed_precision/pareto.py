"""The Pareto track: the (score, cost) front of a table and each method's hypervolume regret.

No budget here: a method searches every width-index vector of a table (hardware, metric) and is
scored by how much of the reference front's hypervolume its evaluated policies dominate.

* **Reference front** (:func:`pareto_instance`):

  - *exact*, where the grid can be enumerated (the exhaustive tables, the 5.8M-policy 8-layer
    surrogate, HAWQ-V3's ResNet-18 with 2^16 policies): every policy scored, the non-dominated
    (score maximised, cost minimised) points kept;
  - *swept*, where it cannot (HAWQ-V3's ResNet-50, 2^48 policies; the 12-layer surrogate,
    7^12): the exact budgeted optimum (integer program, :mod:`~quant_envs.mixed_precision.tables.reference`)
    at each of :func:`sweep_levels` evenly spaced budget levels from the cheapest to the dearest
    policy (65 for a pairwise surrogate, whose integer programs take seconds; 1025 for a separable
    score, whose take milliseconds), the non-dominated ones kept. Its hypervolume is a lower bound of the exact front's;
    :attr:`ParetoInstance.front_hv_upper` bounds it from above (between two levels no policy
    scores more than the optimum at the upper level), so a method can come out slightly below zero
    regret, never by more than ``front_hv_upper - front_hv``.
* **Hypervolume** (:func:`hypervolume`), 2-D and exact: both axes normalised to [0, 1] by the
  table's range over all policies (score: 0 = the worst policy, 1 = the best; cost: 0 = the
  cheapest, 1 = the dearest), reference point (score 0, cost 1), so the exact front's hypervolume
  is at most 1. **Hypervolume regret** after n evaluations = HV(reference front) - HV(first n
  distinct policies evaluated), in units of the normalised square.
* **Entrants**: ``random`` (distinct policies uniformly from the whole grid) and ``nsga2``
  (Optuna's NSGA-II, :func:`baselines.mixed_precision.optuna_search.nsga2_front_search`, library
  defaults); the leaderboard adds an RL agent (:mod:`agents.leaderboard`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from baselines.mixed_precision.optuna_search import nsga2_front_search
from quant_envs.atomic_io import atomic_write_text
from quant_envs.mixed_precision.tables.policy_table import PolicyTable, grid_sum
from quant_envs.mixed_precision.tables.reference import (
    ENUMERATION_LIMIT,
    cost_digest,
    exact_optimum,
)
from quant_envs.mixed_precision.tables.surrogate_optimum import milp_optimum
from quant_envs.rendering import new_figure, save_figure

#: Largest grid enumerated for the front: the exact optimum's (8 units x 7 widths, ``mnist1d-cnn-s``).
FRONT_LIMIT = ENUMERATION_LIMIT
PARETO_METHODS = ("random", "nsga2")
#: Most policies drawn behind a front (a seeded sample beyond it).
CLOUD_POINTS = 200_000
#: Budget levels of a swept front: 0, 1/64, ..., 1 of the way from the cheapest to the dearest policy.
SWEEP_LEVELS = 65
#: The same for a separable score (an integer program of milliseconds): 0, 1/1024, ..., 1.
SWEEP_LEVELS_SEPARABLE = 1025
#: Version of a swept front's cache file (a file of another version is solved again).
SWEEP_FORMAT = 1


def non_dominated(score: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the points no other point dominates (score >= and cost <=, one strictly), by cost
    ascending; of equal points the first is kept."""
    order = np.lexsort((np.arange(len(score)), -np.asarray(score), np.asarray(cost)))
    keep, best = [], -np.inf
    for j in order:
        if score[j] > best:
            keep.append(j)
            best = score[j]
    return np.array(keep, dtype=int)


def hypervolume(score: np.ndarray, cost: np.ndarray, reference: tuple[float, float] = (0.0, 1.0)) -> float:
    """Area dominated by the points (score maximised, cost minimised) and bounded by ``reference``
    (score, cost); points beyond the reference add nothing."""
    s, c = np.asarray(score, dtype=float), np.asarray(cost, dtype=float)
    inside = (s > reference[0]) & (c < reference[1])
    s, c = s[inside], c[inside]
    if not len(s):
        return 0.0
    front = non_dominated(s, c)
    s, c = s[front], c[front]
    right = np.append(c[1:], reference[1])
    return float(np.sum((right - c) * (s - reference[0])))


@dataclass(frozen=True)
class ParetoInstance:
    """A table at one (hardware, metric): its normalisation, its reference front and that front's
    hypervolume. ``score`` and ``cost`` hold every policy's normalised values where the grid was
    enumerated (``exact``), else None (:meth:`objectives` computes them)."""

    table: PolicyTable
    hardware: str
    metric: str
    unit_cost: np.ndarray  # [units, len(bits)] in the metric's unit
    score_range: tuple[float, float]  # (worst, best) score over all policies
    cost_range: tuple[float, float]  # (cheapest, dearest) cost over all policies
    front: np.ndarray  # flat indices of the reference front, cost ascending
    front_hv: float
    exact: bool  # True: enumerated front; False: budgeted optima over sweep_levels(table) levels
    front_hv_upper: float  # upper bound of the exact front's hypervolume (front_hv where exact)
    score: np.ndarray | None = None  # [policies] normalised (flat row-major over width indices)
    cost: np.ndarray | None = None  # [policies] normalised

    @property
    def sizes(self) -> np.ndarray:
        return np.full(self.table.num_units, len(self.table.bits))

    @property
    def num_policies(self) -> int:
        return len(self.table.bits) ** self.table.num_units

    def flat(self, choice: np.ndarray) -> int:
        return int(self.table.flat_index(np.asarray(choice)))

    def objectives(self, flat: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (score, cost) of policies given by flat index."""
        flat = np.asarray(flat, dtype=np.int64)
        if self.score is not None and self.cost is not None:
            return self.score[flat], self.cost[flat]
        shape = (len(self.table.bits),) * self.table.num_units
        idx = np.stack(np.unravel_index(flat, shape), axis=-1) if flat.size else np.zeros((0, len(shape)), int)
        raw_s = np.asarray(self.table.scores(idx), dtype=float)
        raw_c = self.unit_cost[np.arange(self.table.num_units), idx].sum(axis=-1)
        return _scale(raw_s, self.score_range), _scale(raw_c, self.cost_range)

    def hv_regret(self, evaluated: Sequence[int], checkpoints: Sequence[int]) -> dict[int, float]:
        """HV regret after the first n of ``evaluated`` (flat indices, distinct) for each n."""
        s, c = self.objectives(evaluated)
        return {int(n): self.front_hv - hypervolume(s[:n], c[:n]) for n in checkpoints}


def _scale(x: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    return (x - span[0]) / max(span[1] - span[0], 1e-300)


def pareto_instance(table: PolicyTable, hardware: str, metric: str, cache: str | Path | None = None,
                    enumerate_limit: int = FRONT_LIMIT) -> ParetoInstance:
    """The table at (hardware, metric) with its reference front: exact where the grid has at most
    ``enumerate_limit`` policies, else swept (:func:`swept_front`; ``cache``, a JSON file, keeps the
    solved optima, reused while the table and costs are those it was solved for)."""
    unit_cost = np.asarray(table.costs[hardware][metric], dtype=float)
    cost_range = (float(unit_cost.min(axis=1).sum()), float(unit_cost.max(axis=1).sum()))
    nb, units = len(table.bits), table.num_units
    if nb ** units <= enumerate_limit:
        # flat row-major arrays, never the [policies, units] grid (370 MB at 7^8)
        raw = table.flat_scores()
        score_range = (float(raw.min()), float(raw.max()))
        s, c = _scale(raw, score_range), _scale(grid_sum(unit_cost), cost_range)
        front = non_dominated(s, c)
        hv = hypervolume(s[front], c[front])
        return ParetoInstance(table, hardware, metric, unit_cost, score_range, cost_range, front, hv, True, hv, s, c)
    best, worst, swept = swept_front(table, unit_cost, cache)
    score_range = (float(table.scores(worst)), float(table.scores(best)))
    inst = ParetoInstance(table, hardware, metric, unit_cost, score_range, cost_range, np.zeros(0, np.int64),
                          0.0, False, 0.0)
    flat = np.array([inst.flat(i) for i in swept], dtype=np.int64)
    s, c = inst.objectives(flat)
    keep = non_dominated(s, c)
    levels = np.linspace(0.0, 1.0, sweep_levels(table))
    # below level k+1's budget no policy beats its optimum: the exact front lies under this staircase
    upper = float(np.sum(np.diff(levels) * s[1:]))
    return ParetoInstance(table, hardware, metric, unit_cost, score_range, cost_range, flat[keep],
                          hypervolume(s[keep], c[keep]), False, upper)


def has_front(table: PolicyTable, enumerate_limit: int = FRONT_LIMIT) -> bool:
    """Whether :func:`pareto_instance` can find ``table``'s reference front: its grid can be enumerated,
    or its score is one an integer program solves at each budget (separable, or a pairwise surrogate)."""
    return (len(table.bits) ** table.num_units <= enumerate_limit or table.separable
            or (table.model is not None and table.model.kind == "pairwise"))


def sweep_levels(table: PolicyTable) -> int:
    """How many evenly spaced budget levels a swept front of ``table`` solves."""
    return SWEEP_LEVELS_SEPARABLE if table.separable and table.model is None else SWEEP_LEVELS


def swept_front(table: PolicyTable, unit_cost: np.ndarray, cache: str | Path | None = None
                ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(best policy, worst policy, budgeted optimum at each of :func:`sweep_levels` levels) as width
    indices: integer programs (a pairwise surrogate's or a separable score's), certified optimal."""
    lo, hi = float(unit_cost.min(axis=1).sum()), float(unit_cost.max(axis=1).sum())
    budgets = lo + np.linspace(0.0, 1.0, sweep_levels(table)) * (hi - lo)
    key = {"format": SWEEP_FORMAT, "table_digest": table.digest,
           "cost_digests": [cost_digest(unit_cost, float(b)) for b in budgets]}
    path = Path(cache) if cache is not None else None
    if path is not None and path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if all(stored.get(k) == v for k, v in key.items()):
            return (np.array(stored["best"]), np.array(stored["worst"]), [np.array(i) for i in stored["optima"]])
    top = exact_optimum(table, unit_cost, hi)  # best and worst over every policy
    optima = [_budgeted_best(table, unit_cost, float(b)) for b in budgets[:-1]] + [np.asarray(top.index)]
    if path is not None:
        atomic_write_text(path, json.dumps({**key, "best": np.asarray(top.index).tolist(),
                                            "worst": np.asarray(top.worst_index).tolist(),
                                            "optima": [o.tolist() for o in optima]}, indent=1) + "\n")
    return np.asarray(top.index), np.asarray(top.worst_index), optima


def _budgeted_best(table: PolicyTable, unit_cost: np.ndarray, budget: float) -> np.ndarray:
    """The best policy within ``budget``: a pairwise surrogate's integer program alone (not the worst
    policy's too, as :func:`exact_optimum` solves: each takes seconds), else :func:`exact_optimum`'s
    (a separable score's integer programs take milliseconds; it raises where neither applies)."""
    if table.model is not None and table.model.kind == "pairwise":
        return milp_optimum(table.model, unit_cost, budget).index
    return np.asarray(exact_optimum(table, unit_cost, budget).index)


def pareto_run(instance: ParetoInstance, method: str, seed: int, max_evaluations: int) -> list[int]:
    """The distinct policies (flat indices) ``method`` evaluates, in order, at most ``max_evaluations``."""
    if method == "random":
        rng = np.random.default_rng(seed)
        n = instance.num_policies
        if n <= FRONT_LIMIT:
            return rng.permutation(n)[:max_evaluations].tolist()
        drawn: dict[int, None] = {}  # insertion-ordered distinct draws
        while len(drawn) < min(max_evaluations, n):
            drawn.update(dict.fromkeys(rng.integers(0, n, max_evaluations - len(drawn), dtype=np.int64).tolist()))
        return list(drawn)[:max_evaluations]
    if method == "nsga2":

        def objectives(choice: np.ndarray) -> tuple[float, float]:
            s, c = instance.objectives([instance.flat(choice)])
            return float(s[0]), float(c[0])

        return [instance.flat(c) for c in nsga2_front_search(instance.sizes, objectives, max_evaluations, seed)]
    raise ValueError(f"method={method!r} is not allowed; expected one of {list(PARETO_METHODS)}")


def plot_front(instance: ParetoInstance, found: dict[str, Sequence[int]], path: str) -> None:
    """The reference front over a cloud of policies, with each method's evaluated non-dominated points."""
    fig = new_figure()
    ax = fig.add_subplot()
    n = instance.num_policies
    if n > CLOUD_POINTS:  # a drawing of millions of points is slow and shows nothing more
        cloud = np.random.default_rng(0).choice(n, CLOUD_POINTS, replace=False) if n <= FRONT_LIMIT else \
            np.unique(np.random.default_rng(0).integers(0, n, CLOUD_POINTS, dtype=np.int64))
        label = f"policies (a random {len(cloud):,})"
    else:
        cloud, label = np.arange(n), "all policies"
    s, c = instance.objectives(cloud)
    ax.scatter(c, s, s=2, c="0.8", label=label, rasterized=True)
    fs, fc = instance.objectives(instance.front)
    ax.step(fc, fs, where="post", c="k",
            label="exact front" if instance.exact else f"front swept over {sweep_levels(instance.table)} budgets")
    for name, evaluated in found.items():
        es, ec = instance.objectives(evaluated)
        nd = non_dominated(es, ec)
        ax.plot(ec[nd], es[nd], "o-", ms=3, label=f"{name} ({len(es)} evaluations)")
    ax.set_xlabel(f"{instance.metric} (normalised)")
    ax.set_ylabel("score (normalised)")
    ax.set_title(f"{instance.table.name}, {instance.hardware}, {instance.metric}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
