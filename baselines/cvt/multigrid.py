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

from dataclasses import dataclass

import numpy as np

from baselines.cvt._core import (
    LBFGSMemory,
    Objective,
    Point,
    lbfgs_iteration,
    line_search,
    tn_iteration,
)
from baselines.cvt.transfer import PROLONGATIONS, _linear_1d, _linear_2d, build_transfer
from quant_envs._checks import check_choice, check_float, check_int
from quant_envs.cvt import CVTProblem


@dataclass
class MGOptions:
    """Parameters of the MG/Opt V-cycle (defaults as in the module docstring)."""

    nu1: int = 1
    nu2: int = 1
    max_cg: int = 10
    eta: float = 0.1
    coarsest: int = 8
    coarse_tol: float = 1e-6
    coarse_max_iter: int = 10
    prolongation: str = "linear"
    coarse_start: str | None = None  # "restrict" or "reference"; None: restrict in 1-D, reference in 2-D
    kappa: float | None = None  # None: (k_fine / k_coarse) ** (2 / d)
    reference_tol: float = 1e-3
    reference_cycles: int = 30
    smoother: str = "tn"  # "tn" (truncated Newton) or "lbfgs" (memory kept per level)
    memory: int = 10

    def __post_init__(self) -> None:
        check_int("nu1", self.nu1, min_value=0)
        check_int("nu2", self.nu2, min_value=0)
        check_int("max_cg", self.max_cg, min_value=1)
        check_float("eta", self.eta, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
        check_int("coarsest", self.coarsest, min_value=1)
        check_float("coarse_tol", self.coarse_tol, min_value=0.0, min_inclusive=False)
        check_int("coarse_max_iter", self.coarse_max_iter, min_value=1)
        check_choice("prolongation", self.prolongation, PROLONGATIONS)
        if self.coarse_start is not None:
            check_choice("coarse_start", self.coarse_start, COARSE_STARTS)
        if self.kappa is not None:
            check_float("kappa", self.kappa, min_value=0.0, min_inclusive=False)
        check_float("reference_tol", self.reference_tol, min_value=0.0, min_inclusive=False)
        check_int("reference_cycles", self.reference_cycles, min_value=1)
        check_choice("smoother", self.smoother, SMOOTHERS)
        check_int("memory", self.memory, min_value=1)


COARSE_STARTS = ("restrict", "reference")
SMOOTHERS = ("tn", "lbfgs")


class MGOpt:
    """The MG/Opt V-cycle on a CVT problem (the finest level is ``problem``)."""

    def __init__(self, problem: CVTProblem, options: MGOptions) -> None:
        self.fine = problem
        self.opt = options
        self.mode = options.coarse_start or ("restrict" if problem.dim == 1 else "reference")
        self._problems: dict[int, CVTProblem] = {problem.k: problem}
        # Reference mode: level sizes are fixed, each coarse level keeps one coarse CVT.
        self.sizes = [problem.k]
        while round(self.sizes[-1] / 2**problem.dim) >= options.coarsest:
            self.sizes.append(round(self.sizes[-1] / 2**problem.dim))
        self._refs: dict[int, Point] = {}
        self._memories: dict[int, LBFGSMemory] = {}
        self.accepted = self.rejected = 0

    def _problem(self, k: int) -> CVTProblem:
        if k not in self._problems:
            self._problems[k] = self.fine.with_k(k)
        return self._problems[k]

    def coarse_work(self) -> float:
        """Coarse-level cell passes, weighted by k_level / k (fine-pass equivalents)."""
        return sum(q.n_evaluations * q.k / self.fine.k for k, q in self._problems.items() if k != self.fine.k)

    # ------------------------------------------------------------------ building blocks
    def _memory(self, k: int) -> LBFGSMemory:
        if k not in self._memories:
            self._memories[k] = LBFGSMemory(self.opt.memory)
        return self._memories[k]

    def _smooth(self, obj: Objective, p: Point, steps: int) -> Point:
        for _ in range(steps):
            if self.opt.smoother == "lbfgs":
                q = lbfgs_iteration(obj, p, self._memory(obj.problem.k))
            else:
                q = tn_iteration(obj, p, self.opt.max_cg, self.opt.eta)
            if q is None:
                break
            p = q
        return p

    def _solve_coarsest(self, obj: Objective, p: Point, tol: float | None = None) -> Point:
        # The coarse gradient grad E - w is a difference of two larger vectors: below
        # ~1e-13 of their size it is rounding noise, so stop there too.
        floor = 1e-13 * float(np.linalg.norm(p.g + obj.shift)) if obj.shift is not None else 0.0
        target = max((tol or self.opt.coarse_tol) * float(np.linalg.norm(p.g)), floor)
        for _ in range(self.opt.coarse_max_iter):
            if float(np.linalg.norm(p.g)) <= target:
                break
            q = tn_iteration(obj, p, max(self.opt.max_cg, p.z.size), 1e-3)
            if q is None:
                break
            p = q
        return p

    def _reference(self, level: int) -> Point:
        """A CVT of level ``level`` (computed once, by nested iteration from the level below)."""
        if level not in self._refs:
            problem = self._problem(self.sizes[level])
            obj = Objective(problem)
            if level == len(self.sizes) - 1:
                start = obj.at(problem.random_generators(np.random.default_rng(0)))
                self._refs[level] = self._solve_coarsest(obj, start, 1e-10)
            else:
                below = self._reference(level + 1).z
                p = obj.at(_refine(below, problem))
                g0 = float(np.linalg.norm(p.g))
                for _ in range(self.opt.reference_cycles):
                    if float(np.linalg.norm(p.g)) <= self.opt.reference_tol * g0:
                        break
                    p = self.cycle(p, level, obj)
                self._refs[level] = p
        return self._refs[level]

    # ------------------------------------------------------------------ the V-cycle
    def cycle(self, p: Point, level: int = 0, obj: Objective | None = None) -> Point:
        """One V-cycle from the evaluated point ``p`` on ``level``; returns the new evaluated point."""
        obj = obj if obj is not None else Objective(self.fine)
        problem = obj.problem
        if (self.mode == "restrict" and problem.k <= self.opt.coarsest) or (
            self.mode == "reference" and level == len(self.sizes) - 1
        ):
            return self._solve_coarsest(obj, p)
        p = self._smooth(obj, p, self.opt.nu1)
        if self.mode == "restrict":
            transfer = build_transfer(p.z, problem.dim, self.opt.prolongation)
            coarse = self._problem(transfer.k_coarse)
            y0 = transfer.restrict_positions()
            ev = coarse.evaluate(y0)
            e_y0, g_y0, m_y0, c_y0 = ev.energy, ev.gradient, ev.masses, ev.centroids
            prolong = transfer.prolong_matrix
        else:
            ref = self._reference(level + 1)
            coarse = self._problem(self.sizes[level + 1])
            y0, e_y0, g_y0, m_y0, c_y0 = ref.z, ref.f, ref.g, ref.masses, ref.centroids
            prolong = interpolation(p.z, y0, problem)
        kappa = self.opt.kappa
        if kappa is None:
            kappa = (problem.k / coarse.k) ** (2.0 / problem.dim)
        w = g_y0 - kappa * (prolong.T @ p.g)
        lin = w * y0
        start = Point(y0, e_y0 - float(np.sum(lin)), g_y0 - w, m_y0, c_y0, abs(e_y0) + float(np.sum(np.abs(lin))))
        y = self.cycle(start, level + 1, Objective(coarse, w)).z
        q = line_search(obj, p, prolong @ (y - y0))
        if q is not None:
            if self.opt.smoother == "lbfgs":
                self._memory(problem.k).add(q.z - p.z, q.g - p.g)
            self.accepted += 1
            p = q
        else:
            self.rejected += 1
        return self._smooth(obj, p, self.opt.nu2)


def interpolation(z: np.ndarray, nodes: np.ndarray, problem: CVTProblem):
    """Piecewise-linear interpolation matrix from coarse generators ``nodes`` to points ``z``."""
    if problem.dim == 1:
        return _linear_1d(z, nodes)
    return _linear_2d(z, nodes, problem.domain.vertices)


def _refine(coarse: np.ndarray, problem: CVTProblem) -> np.ndarray:
    """k generators around the coarse ones: each split into 2^d children a quarter-spacing apart."""
    k, dim = problem.k, problem.dim
    h = 0.25 * (problem.domain.size / max(len(coarse), 1)) ** (1.0 / dim)
    if dim == 1:
        kids = (coarse[:, None] + np.array([-h, h])[None, :]).ravel()
    else:
        off = np.array([[-h, -h], [h, -h], [-h, h], [h, h]])
        kids = (coarse[:, None, :] + off[None, :, :]).reshape(-1, 2)
    if len(kids) < k:  # rounding of level sizes: top up with the coarse points themselves
        kids = np.concatenate([kids, coarse[: k - len(kids)]])
    return problem.domain.clip(kids[:k])
