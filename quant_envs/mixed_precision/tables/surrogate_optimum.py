"""The exact optimum of a surrogate's scoring function under an additive budget.

* :func:`enumerate_optimum`: every policy of the grid, vectorised numpy in chunks (5.8M policies
  of 8 units x 7 widths in a few seconds); any :class:`~.surrogate.SurrogateTable`.
* :func:`milp_optimum`: a pairwise surrogate as an integer program that HiGHS
  (``scipy.optimize.milp``) solves to a zero gap, so its answer is certified optimal where the grid
  is too large to enumerate (12 units x 7 widths: 1.4e10 policies). Binary ``x[l, b]``, one width
  per unit; each pair term ``v[p, a, b]`` multiplies a continuous ``y[p, a, b] >= 0`` tied to the
  pair's choices by ``sum_b y[p, a, b] = x[l, a]`` and ``sum_a y[p, a, b] = x[m, b]`` (so
  ``y[p, a, b] = x[l, a] x[m, b]`` at any integral ``x``); the budget ``sum cost[l, b] x[l, b] <=
  budget`` is linear because ``hw_sim``'s costs are additive over units.

Both use the table problem's feasibility rule (cost at most ``budget * (1 + RELATIVE_SLACK)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse

from quant_envs.mixed_precision.problem import RELATIVE_SLACK
from quant_envs.mixed_precision.tables.surrogate import SurrogateTable, iter_grid


@dataclass(frozen=True)
class SurrogateOptimum:
    """The best feasible policy of a scoring function at one budget."""

    index: np.ndarray  # width index per unit
    score: float
    cost: float
    method: str  # "enumeration" or "milp"
    num_feasible: int | None  # enumeration only


def enumerate_optimum(model: SurrogateTable, cost: np.ndarray, budget: float,
                      chunk: int = 1 << 20) -> SurrogateOptimum:
    """The optimum by enumeration over the grid (ties: the first in row-major order)."""
    limit = budget * (1 + RELATIVE_SLACK)
    units = np.arange(model.num_units)
    best, best_score, feasible = None, -np.inf, 0
    for _, idx in iter_grid(len(model.bits), model.num_units, chunk):
        c = cost[units, idx].sum(axis=1)
        ok = c <= limit
        if not ok.any():
            continue
        feasible += int(ok.sum())
        s = np.where(ok, model.scores(idx), -np.inf)
        k = int(np.argmax(s))
        if s[k] > best_score:
            best, best_score = idx[k].copy(), float(s[k])
    if best is None:
        raise ValueError(f"budget={budget!r} is infeasible: no policy costs at most {limit:.6g}")
    return SurrogateOptimum(best, model.score(best), float(cost[units, best].sum()), "enumeration", feasible)


def milp_optimum(model: SurrogateTable, cost: np.ndarray, budget: float,
                 time_limit: float = 600.0) -> SurrogateOptimum:
    """The optimum of a pairwise surrogate by ``scipy.optimize.milp`` to a zero relative gap;
    raises ``RuntimeError`` where HiGHS cannot certify it within ``time_limit`` seconds."""
    if model.kind != "pairwise":
        raise ValueError(f"model kind={model.kind!r} is not allowed; the integer program needs 'pairwise'")
    n, nb, npairs = model.num_units, len(model.bits), len(model.pairs)
    nx, ny = n * nb, npairs * nb * nb
    obj = -np.concatenate([model.unary.reshape(-1), model.pair_terms.reshape(-1)])
    scale = float(np.max(np.abs(obj))) or 1.0  # HiGHS's tolerances are absolute: work near 1
    rows, cols, vals = [], [], []
    r = 0
    for u in range(n):  # one width per unit
        rows += [r] * nb
        cols += list(range(u * nb, (u + 1) * nb))
        vals += [1.0] * nb
        r += 1
    for p, (a, b) in enumerate(model.pairs):  # marginals of y[p] are x[a] and x[b]
        base = nx + p * nb * nb
        for i in range(nb):
            rows += [r] * (nb + 1)
            cols += [base + i * nb + j for j in range(nb)] + [a * nb + i]
            vals += [1.0] * nb + [-1.0]
            r += 1
            rows += [r] * (nb + 1)
            cols += [base + j * nb + i for j in range(nb)] + [b * nb + i]
            vals += [1.0] * nb + [-1.0]
            r += 1
    eq = sparse.csr_array((vals, (rows, cols)), shape=(r, nx + ny))
    rhs = np.zeros(r)
    rhs[:n] = 1.0
    budget_row = np.concatenate([cost.reshape(-1) / budget, np.zeros(ny)])[None, :]
    integrality = np.concatenate([np.ones(nx), np.zeros(ny)])
    limit = 1.0 + RELATIVE_SLACK
    for _ in range(8):
        res = optimize.milp(obj / scale, integrality=integrality, bounds=optimize.Bounds(0.0, 1.0),
                            constraints=[optimize.LinearConstraint(eq, rhs, rhs),
                                         optimize.LinearConstraint(budget_row, -np.inf, limit)],
                            options={"mip_rel_gap": 0.0, "disp": False, "time_limit": time_limit})
        if res.x is None:
            raise ValueError(f"budget={budget!r} is infeasible: {res.message}")
        if res.status != 0:
            raise RuntimeError(f"HiGHS did not certify the optimum: {res.message}")
        choice = res.x[:nx].reshape(n, nb).argmax(axis=1)
        spent = float(cost[np.arange(n), choice].sum())
        if spent <= budget * (1 + RELATIVE_SLACK):
            return SurrogateOptimum(choice, model.score(choice), spent, "milp", None)
        limit -= (spent - budget * (1 + RELATIVE_SLACK)) / budget + 1e-9  # HiGHS's feasibility tolerance
    raise RuntimeError("the integer program kept returning answers over the budget")
