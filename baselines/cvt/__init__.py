"""Non-RL solvers for centroidal Voronoi tessellations: Lloyd, L-BFGS and MG/Opt multigrid.

>>> from quant_envs.cvt import CVTProblem
>>> from baselines.cvt import solve
>>> res = solve(CVTProblem(64, "linear"), "multigrid", tol=1e-8, seed=0)
>>> res.converged
True

``python -m baselines.cvt study --out results/cvt`` runs the convergence study.
"""

from __future__ import annotations

from baselines.cvt.multigrid import MGOptions
from baselines.cvt.solvers import METHODS, SOLVERS, CVTResult, solve

__all__ = ["METHODS", "SOLVERS", "CVTResult", "MGOptions", "solve"]
