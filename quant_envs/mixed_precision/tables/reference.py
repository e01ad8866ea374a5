"""The exact optimum of a table benchmark at a budget: what ``MixedPrecisionTable-v0``'s regret is
measured against (imported by the environment, the baselines' regret study and the tests).

* **Enumeration** when the policy grid has at most :data:`ENUMERATION_LIMIT` entries (every
  exhaustive table; HAWQ-V3's ResNet-18, 2^16 policies): every policy's cost and score, vectorised;
  the feasible scores are kept (sorted), so random search's expected best-of-n has a closed form.
* **Integer program** otherwise: ``scipy.optimize.milp`` (HiGHS) to a zero relative gap, over
  one-hot choices per unit, ``max sum score`` subject to ``sum cost <= budget`` for separable scores
  (HAWQ-V3's ResNet-50, 2^48 policies), or with the pair terms linearised for a pairwise surrogate
  (``mnist1d-mbnet-s``, 7^12 policies: :func:`~.surrogate_optimum.milp_optimum`); the same program
  with the objective negated gives the worst feasible policy. A surrogate table ships the optima of
  its instance grid (``meta["optima"]``, solved when it was made, looked up by the costs' and
  budget's digest and used only while their policies still score and fit as recorded); others are
  solved once per process.

Ties between equal-scoring optima go to the cheaper policy, then to the lexicographically first
width indices (enumeration); the integer program returns one of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse

from quant_envs.mixed_precision.problem import RELATIVE_SLACK
from quant_envs.mixed_precision.tables.policy_table import PolicyTable, grid_sum
from quant_envs.mixed_precision.tables.surrogate_optimum import milp_optimum

#: Largest policy grid enumerated: 8 units x 7 widths (the ``mnist1d-cnn-s`` surrogate), about
#: 200 MB of temporaries at most; larger grids take an integer program.
ENUMERATION_LIMIT = 7 ** 8


@dataclass(frozen=True)
class TableOptimum:
    """The best and the worst feasible policy of a table at one budget."""

    index: np.ndarray  # width index per unit of the optimum
    score: float  # its score (the table's units)
    cost: float  # its cost in the budget metric
    worst_index: np.ndarray
    worst_score: float  # least score over feasible policies (regret before anything is found)
    method: str  # "enumeration" or "milp"
    feasible_scores: np.ndarray | None  # every feasible policy's score, ascending (enumeration only)

    @property
    def num_feasible(self) -> int | None:
        return None if self.feasible_scores is None else len(self.feasible_scores)


def cost_digest(cost: np.ndarray, budget: float) -> str:
    """16 hex digits naming a budget instance: the per-unit costs, the budget and the limit the
    feasibility rule applies to it (what a shipped or cached optimum is looked up by)."""
    h = hashlib.sha256(np.ascontiguousarray(cost, dtype=np.float64).tobytes())
    h.update(np.array([budget, budget * (1 + RELATIVE_SLACK)], dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


#: Integer-program optima solved in this process: (table digest, cost digest) -> optimum, at most
#: :data:`SOLVED_LIMIT` (each a few hundred bytes), the oldest dropped first.
_SOLVED: dict[tuple[str, str], TableOptimum] = {}
SOLVED_LIMIT = 1024


def exact_optimum(table: PolicyTable, cost: np.ndarray, budget: float) -> TableOptimum:
    """The optimum of ``table`` with per-unit ``cost`` ([units, bits]) under ``budget``."""
    n, nb = table.num_units, len(table.bits)
    limit = budget * (1 + RELATIVE_SLACK)
    if nb ** n <= ENUMERATION_LIMIT:
        total = grid_sum(cost)
        score = table.flat_scores()
        feasible = np.flatnonzero(total <= limit)
        if not len(feasible):
            raise ValueError(f"budget={budget!r} is infeasible for table {table.name!r}")
        fs = score[feasible]
        # ties: the cheaper policy, then the first in row-major order
        top = feasible[fs == fs.max()]
        best = top[np.lexsort((top, total[top]))[0]]
        worst = feasible[fs == fs.min()][0]
        shape = (nb,) * n
        best_idx, worst_idx = np.array(np.unravel_index(best, shape)), np.array(np.unravel_index(worst, shape))
        fs.sort()
        # scores summed as the environment sums them, so the optimum's own regret is exactly 0
        return TableOptimum(
            index=best_idx, score=float(table.scores(best_idx)), cost=float(total[best]),
            worst_index=worst_idx, worst_score=float(table.scores(worst_idx)),
            method="enumeration", feasible_scores=fs)
    key = (table.digest, cost_digest(cost, budget))
    if key not in _SOLVED:
        if len(_SOLVED) >= SOLVED_LIMIT:
            _SOLVED.pop(next(iter(_SOLVED)))  # the oldest
        found = _shipped(table, cost, budget, key[1]) or _solve(table, cost, budget)
        for arr in (found.index, found.worst_index):
            arr.setflags(write=False)  # shared by every problem of this instance
        _SOLVED[key] = found
    return _SOLVED[key]


def _solve(table: PolicyTable, cost: np.ndarray, budget: float) -> TableOptimum:
    n, nb = table.num_units, len(table.bits)
    pick = np.arange(n)
    if table.model is not None and table.model.kind == "pairwise":
        best_o = milp_optimum(table.model, cost, budget)
        worst_o = milp_optimum(table.model.negated(), cost, budget)
        best, worst = best_o.index, worst_o.index
    elif table.separable:
        best = _milp(table.score, cost, budget, maximise=True)
        worst = _milp(table.score, cost, budget, maximise=False)
    else:
        raise ValueError(f"table {table.name!r} has {nb}^{n} entries: too many to enumerate, and its score is "
                         f"neither separable nor a pairwise surrogate (which an integer program can solve)")
    return TableOptimum(
        index=best, score=float(table.scores(best)), cost=float(cost[pick, best].sum()),
        worst_index=worst, worst_score=float(table.scores(worst)), method="milp", feasible_scores=None)


def _shipped(table: PolicyTable, cost: np.ndarray, budget: float, digest: str) -> TableOptimum | None:
    """The optimum solved when the table was made (``meta["optima"]``, by cost digest), if it was
    solved for this table's scores (``meta["optima_digest"]``) and still holds: its policies feasible
    and scored as recorded (else None: solve again)."""
    entry = next((o for o in table.meta.get("optima", ()) if o.get("cost_digest") == digest), None)
    if entry is None or table.meta.get("optima_digest") != table.digest:
        return None
    pick = np.arange(table.num_units)
    best, worst = np.asarray(entry["index"], dtype=int), np.asarray(entry["worst_index"], dtype=int)
    limit = budget * (1 + RELATIVE_SLACK)
    if max(cost[pick, best].sum(), cost[pick, worst].sum()) > limit or not (
            float(table.scores(best)) == entry["score"] and float(table.scores(worst)) == entry["worst_score"]):
        return None
    return TableOptimum(index=best, score=entry["score"], cost=float(cost[pick, best].sum()), worst_index=worst,
                        worst_score=entry["worst_score"], method=entry["method"], feasible_scores=None)


def _milp(score: np.ndarray, cost: np.ndarray, budget: float, maximise: bool) -> np.ndarray:
    """One-hot integer program over units; the budget row is tightened should HiGHS's feasibility
    tolerance let a rounded answer over the budget through."""
    n, nb = score.shape
    c = (-score if maximise else score).reshape(-1)
    c = c / (float(np.max(np.abs(c))) or 1.0)  # HiGHS's tolerances are absolute: work near 1
    a = cost.reshape(-1) / budget
    one_hot = sparse.csr_array((np.ones(n * nb), (np.repeat(np.arange(n), nb), np.arange(n * nb))), shape=(n, n * nb))
    rhs = 1.0
    for _ in range(8):
        res = optimize.milp(c, integrality=np.ones(n * nb), bounds=optimize.Bounds(0.0, 1.0),
                            constraints=[optimize.LinearConstraint(one_hot, 1.0, 1.0),
                                         optimize.LinearConstraint(a[None, :], -np.inf, rhs)],
                            options={"mip_rel_gap": 0.0, "disp": False})
        if res.x is None:
            raise ValueError(f"budget={budget!r} is infeasible: {res.message}")
        choice = res.x.reshape(n, nb).argmax(axis=1)
        spent = float(cost[np.arange(n), choice].sum())
        if spent <= budget * (1 + RELATIVE_SLACK):
            return choice
        rhs -= (spent - budget) / budget + 1e-9
    raise RuntimeError("the integer program kept returning answers over the budget")


def expected_best_of_n(feasible_scores: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """Expected best score of ``n`` distinct uniform feasible policies (see :func:`best_of_n_moments`)."""
    return best_of_n_moments(feasible_scores, n)[0]


def best_of_n_moments(feasible_scores: np.ndarray, n: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of the best score of ``n`` distinct policies drawn uniformly
    from the feasible set.

    With the ``N`` feasible scores sorted ascending, the best of ``n`` draws without replacement is
    the ``k``-th smallest with probability ``(C(k, n) - C(k - 1, n)) / C(N, n)``. (Random search
    never evaluates a policy twice, hence without replacement.) ``n >= N`` gives the optimum.
    """
    from scipy.special import gammaln

    s = np.sort(np.asarray(feasible_scores, dtype=float))
    big_n = len(s)
    out, sd = [], []
    for m in np.atleast_1d(n):
        m = int(min(m, big_n))
        k = np.arange(1, big_n + 1)

        def log_choose(a: np.ndarray, b: int) -> np.ndarray:
            with np.errstate(invalid="ignore"):
                return np.where(a >= b, gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1), -np.inf)

        cdf = np.exp(log_choose(k, m) - log_choose(np.array([big_n]), m))  # P(best <= s_k)
        pmf = np.diff(np.concatenate([[0.0], cdf]))
        mean = float(pmf @ s)
        out.append(mean)
        sd.append(float(np.sqrt(max(float(pmf @ (s - mean) ** 2), 0.0))))
    return np.array(out), np.array(sd)
