"""The Pareto track: the exact (score, cost) front of a table and each method's hypervolume regret.

No budget here: a method searches every width-index vector of a table (hardware, metric) and is
scored by how much of the exact front's hypervolume its evaluated policies dominate.

* **Exact front** (:func:`pareto_instance`): every policy of the table enumerated (exhaustive tables,
  the 5.8M-policy surrogate and HAWQ-V3's ResNet-18, 2^16 policies; ResNet-50's 2^48 and the
  12-layer surrogate's 7^12 are not enumerated and have no track here),
  the non-dominated (score maximised, cost minimised) points kept.
* **Hypervolume** (:func:`hypervolume`), 2-D and exact: both axes normalised to [0, 1] by the
  table's range over all policies (score: 0 = the worst policy, 1 = the best; cost: 0 = the
  cheapest, 1 = the dearest), reference point (score 0, cost 1), so the exact front's hypervolume
  is at most 1. **Hypervolume regret** after n evaluations = HV(exact front) - HV(first n distinct
  policies evaluated), in units of the normalised square.
* **Entrants**: ``random`` (distinct policies uniformly from the whole grid) and ``nsga2``
  (Optuna's NSGA-II, :func:`baselines.mixed_precision.optuna_search.nsga2_front_search`, library
  defaults). MaskablePPO with the budget drawn per episode and shown in the observation is not an
  entrant yet (it needs an environment option that does not exist).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from baselines.mixed_precision.optuna_search import nsga2_front_search
from quant_envs.mixed_precision.tables.policy_table import PolicyTable, grid_sum
from quant_envs.mixed_precision.tables.reference import ENUMERATION_LIMIT
from quant_envs.rendering import new_figure, save_figure

#: Largest grid enumerated for the front: the exact optimum's (8 units x 7 widths, ``mnist1d-cnn-s``).
FRONT_LIMIT = ENUMERATION_LIMIT
PARETO_METHODS = ("random", "nsga2")
#: Most policies drawn behind a front (a seeded sample beyond it).
CLOUD_POINTS = 200_000


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
    """A table at one (hardware, metric): every policy's score and cost, normalised, and the front."""

    table: PolicyTable
    hardware: str
    metric: str
    score: np.ndarray  # [policies] normalised to [0, 1] (flat row-major over width indices)
    cost: np.ndarray  # [policies] normalised to [0, 1]
    front: np.ndarray  # flat indices of the exact front, cost ascending
    front_hv: float

    @property
    def sizes(self) -> np.ndarray:
        return np.full(self.table.num_units, len(self.table.bits))

    def flat(self, choice: np.ndarray) -> int:
        return int(self.table.flat_index(np.asarray(choice)))

    def hv_regret(self, evaluated: Sequence[int], checkpoints: Sequence[int]) -> dict[int, float]:
        """HV regret after the first n of ``evaluated`` (flat indices, distinct) for each n."""
        idx = np.asarray(evaluated, dtype=int)
        return {int(n): self.front_hv - hypervolume(self.score[idx[:n]], self.cost[idx[:n]]) for n in checkpoints}


def pareto_instance(table: PolicyTable, hardware: str, metric: str) -> ParetoInstance:
    nb, units = len(table.bits), table.num_units
    if nb ** units > FRONT_LIMIT:
        raise ValueError(f"table={table.name!r} has {nb}^{units} policies, more than the {FRONT_LIMIT} enumerated")
    # flat row-major arrays, never the [policies, units] grid (370 MB at 7^8)
    score = table.flat_scores()
    cost = grid_sum(np.asarray(table.costs[hardware][metric], dtype=float))
    s = (score - score.min()) / max(score.max() - score.min(), 1e-300)
    c = (cost - cost.min()) / max(cost.max() - cost.min(), 1e-300)
    front = non_dominated(s, c)
    return ParetoInstance(table, hardware, metric, s, c, front, hypervolume(s[front], c[front]))


def pareto_run(instance: ParetoInstance, method: str, seed: int, max_evaluations: int) -> list[int]:
    """The distinct policies (flat indices) ``method`` evaluates, in order, at most ``max_evaluations``."""
    if method == "random":
        rng = np.random.default_rng(seed)
        return rng.permutation(len(instance.score))[:max_evaluations].tolist()
    if method == "nsga2":

        def objectives(choice: np.ndarray) -> tuple[float, float]:
            j = instance.flat(choice)
            return float(instance.score[j]), float(instance.cost[j])

        return [instance.flat(c) for c in nsga2_front_search(instance.sizes, objectives, max_evaluations, seed)]
    raise ValueError(f"method={method!r} is not allowed; expected one of {list(PARETO_METHODS)}")


def plot_front(instance: ParetoInstance, found: dict[str, Sequence[int]], path: str) -> None:
    """The exact front over every policy, with each method's evaluated non-dominated points."""
    fig = new_figure()
    ax = fig.add_subplot()
    cloud, label = np.arange(len(instance.score)), "all policies"
    if len(cloud) > CLOUD_POINTS:  # a drawing of millions of points is slow and shows nothing more
        cloud = np.random.default_rng(0).choice(len(cloud), CLOUD_POINTS, replace=False)
        label = f"policies (a random {CLOUD_POINTS:,})"
    ax.scatter(instance.cost[cloud], instance.score[cloud], s=2, c="0.8", label=label, rasterized=True)
    f = instance.front
    ax.step(instance.cost[f], instance.score[f], where="post", c="k", label="exact front")
    for name, evaluated in found.items():
        idx = np.asarray(evaluated, dtype=int)
        nd = idx[non_dominated(instance.score[idx], instance.cost[idx])]
        ax.plot(instance.cost[nd], instance.score[nd], "o-", ms=3, label=f"{name} ({len(idx)} evaluations)")
    ax.set_xlabel(f"{instance.metric} (normalised)")
    ax.set_ylabel("score (normalised)")
    ax.set_title(f"{instance.table.name}, {instance.hardware}, {instance.metric}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)
