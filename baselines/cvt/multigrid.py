"""MG/Opt multigrid for CVTs (Di, Emelianenko & Nash, NMTMA 5(2), 2012), built on Nash's MG/Opt
("A multigrid approach to discretized optimization problems", Optim. Methods Softw. 14, 2000;
Lewis & Nash, SISC 26, 2005).

One V-cycle on level l, objective f_l(z) = E_l(z) - <v_l, z> (v_0 = 0):

1. pre-smooth: nu1 truncated-Newton iterations on f_l;
2. restrict: group the generators (:mod:`baselines.cvt.transfer`), y0 = mean of each group,
   w = grad E_{l+1}(y0) - R grad f_l(z) with R = kappa P^T (first-order coherence: the coarse
   objective f_{l+1}(y) = E_{l+1}(y) - <w, y> has gradient R grad f_l(z) at y0);
3. recurse: y = V-cycle(l + 1, y0, w); on the coarsest level, minimise f_L by truncated Newton;
4. correct: e = P (y - y0), line search on f_l along e (Nash's safeguard that makes MG/Opt
   globally convergent);
5. post-smooth: nu2 truncated-Newton iterations.

The coarse problem on level l + 1 is the CVT problem itself with the same density and domain and
about 2^-d as many generators: the CVT energy is its own coarse model.

Choices where the paper is silent (or that we could not read), documented:

* Aggregation and constant prolongation (a group moves as a block) - the coarse variables of
  Du & Emelianenko's multilevel quantizer. In 1-D at a CVT the coarse CVT Hessian is then
  within 1 % of 2 P^T H P on every coarse mode (we measured eigenvalues 0.485-0.504 of
  H_coarse^-1 P^T H P at k = 64, linear density), so kappa = 2 in 1-D makes the coarse Newton
  step the Galerkin one. For 2-D groups of four, kappa = 2 as well (from the same
  block-translation argument: the coarse Hessian scales like the coarse cell mass, 4x, while
  P^T H P of a block translation scales like 2x). Linear interpolation is available as an
  option (``prolongation="linear"``).
* The smoother is truncated Newton (Nash): a Hessian assembled once per iteration (the exact
  CVT Hessian, sparse), preconditioned CG capped at ``max_cg`` iterations and residual
  ``eta`` ||g||, diagonal preconditioner 2 m_i (Lloyd's scaling). ``nu1 = nu2 = 1``.
* Levels coarsen until at most ``coarsest`` generators (default 8) remain; the coarsest
  problem is solved to a relative gradient of 1e-10 (at most 50 TN iterations).
* Line search: secant on the directional derivative with an Armijo test up to rounding
  (see :mod:`baselines.cvt._core`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from baselines.cvt._core import Objective, Point, line_search, tn_iteration
from baselines.cvt.transfer import PROLONGATIONS, build_transfer
from quant_envs._checks import check_choice, check_float, check_int
from quant_envs.cvt import CVTProblem


@dataclass
class MGOptions:
    nu1: int = 1
    nu2: int = 1
    max_cg: int = 10
    eta: float = 0.1
    coarsest: int = 8
    coarse_tol: float = 1e-6
    coarse_max_iter: int = 50
    prolongation: str = "linear"
    kappa: float | None = None  # None: (k_fine / k_coarse) ** (2 / d) (see module docstring)

    def __post_init__(self) -> None:
        check_int("nu1", self.nu1, min_value=0)
        check_int("nu2", self.nu2, min_value=0)
        check_int("max_cg", self.max_cg, min_value=1)
        check_float("eta", self.eta, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
        check_int("coarsest", self.coarsest, min_value=1)
        check_float("coarse_tol", self.coarse_tol, min_value=0.0, min_inclusive=False)
        check_int("coarse_max_iter", self.coarse_max_iter, min_value=1)
        check_choice("prolongation", self.prolongation, PROLONGATIONS)
        if self.kappa is not None:
            check_float("kappa", self.kappa, min_value=0.0, min_inclusive=False)


@dataclass
class MGStats:
    """Evaluation counts per level (index 0 = finest) and their k."""

    evals: dict[int, int] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)
    accepted_corrections: int = 0
    rejected_corrections: int = 0


class MGOpt:
    """The MG/Opt V-cycle on a CVT problem (the finest level is ``problem``)."""

    def __init__(self, problem: CVTProblem, options: MGOptions) -> None:
        self.fine = problem
        self.opt = options
        self.stats = MGStats()
        self._problems: dict[int, CVTProblem] = {problem.k: problem}

    def _problem(self, k: int) -> CVTProblem:
        if k not in self._problems:
            self._problems[k] = self.fine.with_k(k)
        return self._problems[k]

    def _smooth(self, obj: Objective, p: Point, steps: int) -> Point:
        for _ in range(steps):
            q = tn_iteration(obj, p, self.opt.max_cg, self.opt.eta)
            if q is None:
                break
            p = q
        return p

    def _solve_coarsest(self, obj: Objective, p: Point) -> Point:
        # The coarse gradient grad E - w is a difference of two larger vectors: below
        # ~1e-13 of their size it is rounding noise, so stop there too.
        floor = 1e-13 * float(np.linalg.norm(p.g + obj.shift)) if obj.shift is not None else 0.0
        target = max(self.opt.coarse_tol * float(np.linalg.norm(p.g)), floor)
        for _ in range(self.opt.coarse_max_iter):
            if float(np.linalg.norm(p.g)) <= target:
                break
            q = tn_iteration(obj, p, max(self.opt.max_cg, p.z.size), 1e-3)
            if q is None:
                break
            p = q
        return p

    def cycle(self, p: Point, level: int = 0, obj: Objective | None = None) -> Point:
        """One V-cycle from the evaluated point ``p`` on ``level``; returns the new evaluated point."""
        problem = obj.problem if obj is not None else self.fine
        obj = obj if obj is not None else Objective(problem)
        self.stats.sizes[level] = problem.k
        if problem.k <= self.opt.coarsest:
            return self._solve_coarsest(obj, p)
        p = self._smooth(obj, p, self.opt.nu1)
        transfer = build_transfer(p.z, problem.dim, self.opt.prolongation)
        if transfer.k_coarse < problem.k:
            coarse = self._problem(transfer.k_coarse)
            y0 = transfer.restrict_positions()
            ev = coarse.evaluate(y0)
            kappa = self.opt.kappa
            if kappa is None:
                kappa = (problem.k / transfer.k_coarse) ** (2.0 / problem.dim)
            w = ev.gradient - kappa * transfer.restrict_gradient(p.g)
            coarse_obj = Objective(coarse, w)
            lin = w * y0
            start = Point(y0, ev.energy - float(np.sum(lin)), ev.gradient - w, ev.masses, ev.centroids,
                          abs(ev.energy) + float(np.sum(np.abs(lin))))
            y = self.cycle(start, level + 1, coarse_obj).z
            q = line_search(obj, p, transfer.prolong(y - y0))
            if q is not None:
                self.stats.accepted_corrections += 1
                p = q
            else:
                self.stats.rejected_corrections += 1
        return self._smooth(obj, p, self.opt.nu2)
