"""HAWQ-V3's integer program: one choice per layer, least total sensitivity under a cost budget.

    minimise   sum_i sum_k Omega_i[k] x_ik
    subject to sum_k x_ik = 1                      for every layer i   (one-hot)
               sum_i sum_k cost_i[k] x_ik <= budget                    (the accelerator budget)
               x_ik in {0, 1}

solved with ``scipy.optimize.milp`` (HiGHS branch and cut) to a zero relative gap. Costs are scaled
by the budget and the objective by its largest entry, so HiGHS's absolute tolerances act on
numbers of order one instead of microseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse


@dataclass(frozen=True)
class ILPSolution:
    choice: np.ndarray  # per layer, the index of the chosen option
    objective: float  # sum of the chosen Omega (unscaled)
    status: int  # scipy.optimize.milp status (0 = optimal)
    message: str
    tightenings: int  # times the budget row was tightened because a rounded answer broke the budget


def solve_assignment_ilp(objective: Sequence[np.ndarray], cost: Sequence[np.ndarray], budget: float,
                         is_feasible: Callable[[np.ndarray], bool] | None = None,
                         time_limit_s: float | None = None) -> ILPSolution:
    """Minimise ``sum_i objective[i][k_i]`` subject to ``sum_i cost[i][k_i] <= budget``.

    ``is_feasible`` (optional) is the problem's own budget check of a rounded answer: should HiGHS's
    feasibility tolerance let an answer through that the problem rejects, the budget row is
    tightened by the excess and the program solved again.
    """
    sizes = [len(o) for o in objective]
    n = int(sum(sizes))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    c = np.concatenate([np.asarray(o, dtype=float) for o in objective])
    scale = float(np.max(np.abs(c))) or 1.0
    a_cost = np.concatenate([np.asarray(k, dtype=float) for k in cost]) / budget
    rows = np.repeat(np.arange(len(sizes)), sizes)
    one_hot = sparse.csr_array((np.ones(n), (rows, np.arange(n))), shape=(len(sizes), n))
    options: dict = {"mip_rel_gap": 0.0, "disp": False}
    if time_limit_s is not None:
        options["time_limit"] = time_limit_s
    rhs = 1.0
    for tightenings in range(8):
        res = optimize.milp(
            c / scale, integrality=np.ones(n), bounds=optimize.Bounds(0.0, 1.0),
            constraints=[optimize.LinearConstraint(one_hot, 1.0, 1.0),
                         optimize.LinearConstraint(a_cost[None, :], -np.inf, rhs)],
            options=options,
        )
        if res.x is None:
            raise ValueError(f"the integer program has no solution within the budget: {res.message}")
        choice = np.array([int(np.argmax(res.x[offsets[i]:offsets[i + 1]])) for i in range(len(sizes))])
        spent = float(sum(a_cost[offsets[i] + k] for i, k in enumerate(choice)))
        if is_feasible is None or is_feasible(choice):
            value = float(sum(objective[i][k] for i, k in enumerate(choice)))
            return ILPSolution(choice, value, int(res.status), str(res.message), tightenings)
        rhs -= max(spent - rhs, 1e-12) + 1e-9
    raise RuntimeError("the integer program kept returning answers over the budget")
