"""MG/Opt multigrid for CVTs (Di, Emelianenko & Nash, "Truncated Newton-based multigrid algorithm
for centroidal Voronoi diagram calculation", NMTMA 5(2), 2012), on Nash's MG/Opt ("A multigrid
approach to discretized optimization problems", Optim. Methods Softw. 14, 2000; Lewis & Nash,
SISC 26, 2005).

Levels are CVT problems with the same density and domain and about 2^-d as many generators: the
CVT energy is its own coarse model. One V-cycle on level l, objective f_l(z) = E_l(z) - <v_l, z>
(v_0 = 0):

1. pre-smooth: ``nu1`` truncated-Newton iterations on f_l;
2. coarse start y0 and prolongation P (below); w = grad E_{l+1}(y0) - R grad f_l(z) with
   R = kappa P^T, the MG/Opt first-order coherence term: the coarse objective
   f_{l+1}(y) = E_{l+1}(y) - <w, y> has gradient R grad f_l(z) at y0, so a fine solution is a
   fixed point and the coarse correction is a descent direction;
3. recurse: y = V-cycle(l + 1, y0, w); the coarsest level is minimised by truncated Newton with
   full CG (Newton), to a relative gradient of ``coarse_tol`` or ``coarse_max_iter`` iterations;
4. correct: e = P (y - y0), line search on f_l along e (Nash's safeguard, which makes MG/Opt
   globally convergent);
5. post-smooth: ``nu2`` truncated-Newton iterations.

Choices where the paper is silent (or that we could not read), each measured; the measurements
are in the documentation's "MG/Opt multigrid: design choices and measurements" page:

* 1-D (``coarse_start="restrict"``): neighbours in sorted order are paired, y0 = pair means, P
  interpolates coarse corrections linearly between the coarse generators (constant beyond the
  ends), kappa = (k_l / k_{l+1})^(2/d) = 4 (the coarse Hessian then equals kappa P^T H P on
  smooth modes at a CVT).
* 2-D (``coarse_start="reference"``): the restriction of a 2-D CVT is a poor, strongly indefinite
  coarse configuration, so each coarse level keeps a reference CVT of its own, computed once by
  nested iteration, and y0 is that reference; P interpolates coarse displacements linearly on
  the reference points' Delaunay triangulation. MG/Opt's coherence term stays exact. Within
  V-cycles restriction also works (``coarse_start="restrict"``, heavy-edge matching). The
  references' cost is in ``coarse_work``.
* Start (``start``): 1-D cycles from the given z0 (``"given"``). 2-D default ``"nested"`` (full
  multigrid): z0 seeds the coarsest level and sets the reference gradient norm of the stopping
  rule, and the fine level starts from the level-1 reference refined by :func:`_refine` (coarse
  points plus the midpoints of their Gabriel edges, the count matched by filling the largest
  holes) if that has lower energy than z0; ``nested_sweeps`` Lloyd sweeps on every refined start
  (default 0).
* Smoother: truncated Newton (Nash): the exact sparse CVT Hessian assembled once per iteration
  (counted as one evaluation), preconditioned CG capped at ``max_cg`` iterations or residual
  ``eta`` ||g||, stopped at negative curvature; diagonal preconditioner 2 m_i (Lloyd's scaling).
  Defaults (:data:`DEFAULTS`): V(1,1) with max_cg = 10, eta = 0.1 in 1-D; V(2,2) with
  max_cg = 50, eta = 0.01 in 2-D. Also available: ``smoother="lloyd"`` (Lloyd's step on the
  shifted objective, :func:`lloyd_iteration`), ``"lbfgs"`` (memory kept per level) and ``"tr"``
  (Steihaug-Toint trust-region Newton-CG, :func:`baselines.cvt._core.tr_iteration`).
* Levels: coarsened while the next level has at least ``coarsest`` = 8 generators.
* Line search: secant on the directional derivative with an Armijo test up to rounding
  (:mod:`baselines.cvt._core`): at relative gradients ~1e-8 energy differences are below
  rounding, derivatives are not.

In 2-D the V-cycle converges k-uniformly inside a CVT's basin (:mod:`baselines.cvt.basin`), while
the number of cycles from a random start grows with k: the descent crosses a saddle-rich landscape
whose pockets grow in number with k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from baselines.cvt._core import (
    LBFGSMemory,
    Objective,
    Point,
    lbfgs_iteration,
    line_search,
    lloyd_iteration,
    lloyd_preconditioner,
    tn_iteration,
    tr_iteration,
)
from baselines.cvt.transfer import PROLONGATIONS, _linear_1d, _linear_2d, build_transfer
from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.cvt import CVTProblem
from quant_envs.cvt.cells2d import clip_cells, neighbour_pairs
from quant_envs.cvt.domain import ConvexPolygon


@dataclass
class MGOptions:
    """Parameters of the MG/Opt V-cycle (defaults as in the module docstring)."""

    nu1: int | None = None  # None: the per-dimension default in DEFAULTS
    nu2: int | None = None
    max_cg: int | None = None
    eta: float | None = None
    coarsest: int = 8
    coarse_tol: float = 1e-6
    coarse_max_iter: int = 10
    prolongation: str = "linear"
    coarse_start: str | None = None  # "restrict" or "reference"; None: restrict in 1-D, reference in 2-D
    kappa: float | None = None  # None: (k_fine / k_coarse) ** (2 / d)
    reference_tol: float = 1e-3
    reference_cycles: int = 30
    smoother: str = "tn"  # "tn" (truncated Newton), "lbfgs" (memory kept per level), "lloyd" or "tr"
    memory: int = 10
    start: str | None = None  # "given" (z0) or "nested" (refined coarse CVT); None: given in 1-D, nested in 2-D
    nested_sweeps: int | None = None  # Lloyd sweeps on every refined (nested) start; None: 0

    def __post_init__(self) -> None:
        if self.nu1 is not None:
            check_int("nu1", self.nu1, min_value=0)
        if self.nu2 is not None:
            check_int("nu2", self.nu2, min_value=0)
        if self.max_cg is not None:
            check_int("max_cg", self.max_cg, min_value=1)
        if self.eta is not None:
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
        if self.start is not None:
            check_choice("start", self.start, STARTS)
        if self.nested_sweeps is not None:
            check_int("nested_sweeps", self.nested_sweeps, min_value=0)

    def resolved(self, dim: int) -> ResolvedMGOptions:
        """A copy with every None replaced by the default for ``dim``."""
        fields = {f: getattr(self, f) for f in self.__dataclass_fields__}
        for name, value in DEFAULTS[dim].items():
            if fields[name] is None:
                fields[name] = value
        return ResolvedMGOptions(**fields)


@dataclass
class ResolvedMGOptions(MGOptions):
    """:class:`MGOptions` with the per-dimension defaults filled in (what a V-cycle runs with)."""

    nu1: int = 0
    nu2: int = 0
    max_cg: int = 1
    eta: float = 0.1
    coarse_start: str = "restrict"
    start: str = "given"
    nested_sweeps: int = 0


COARSE_STARTS = ("restrict", "reference")
STARTS = ("given", "nested")
#: Per-dimension defaults (tuned on the linear density, see the module docstring).
DEFAULTS = {
    1: {"nu1": 1, "nu2": 1, "max_cg": 10, "eta": 0.1, "coarse_start": "restrict", "start": "given",
        "nested_sweeps": 0},
    2: {"nu1": 2, "nu2": 2, "max_cg": 50, "eta": 0.01, "coarse_start": "reference", "start": "nested",
        "nested_sweeps": 0},
}
SMOOTHERS = ("tn", "lbfgs", "lloyd", "tr")


class MGOpt:
    """The MG/Opt V-cycle on a CVT problem (the finest level is ``problem``)."""

    def __init__(self, problem: CVTProblem, options: MGOptions, seed_points: np.ndarray | None = None) -> None:
        self.fine = problem
        self.seed_points = seed_points  # the coarsest reference starts from the first of these
        self.opt = options = options.resolved(problem.dim)
        self.mode = options.coarse_start
        self._problems: dict[int, CVTProblem] = {problem.k: problem}
        # Reference mode: level sizes are fixed, each coarse level keeps one coarse CVT.
        self.sizes = [problem.k]
        while round(self.sizes[-1] / 2**problem.dim) >= options.coarsest:
            self.sizes.append(round(self.sizes[-1] / 2**problem.dim))
        self._refs: dict[int, Point] = {}
        self._memories: dict[int, LBFGSMemory] = {}
        self._radii: dict[int, float] = {}  # trust-region radius per level (smoother "tr")
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

    def _smooth(self, obj: Objective, p: Point, steps: int, stop_below: float = 0.0) -> Point:
        for _ in range(steps):
            if float(np.linalg.norm(p.g)) <= stop_below:
                break
            if self.opt.smoother == "lbfgs":
                q = lbfgs_iteration(obj, p, self._memory(obj.problem.k))
            elif self.opt.smoother == "lloyd":
                q = lloyd_iteration(obj, p)
            elif self.opt.smoother == "tr":
                q = self._tr_step(obj, p, self.opt.max_cg, self.opt.eta)
            else:
                q = tn_iteration(obj, p, self.opt.max_cg, self.opt.eta)
            if q is None:
                break
            p = q
        return p

    def _tr_step(self, obj: Objective, p: Point, max_cg: int, eta: float, tries: int = 4) -> Point | None:
        k = obj.problem.k
        if k not in self._radii:  # start at the size of Lloyd's step
            pre = lloyd_preconditioner(p.masses, obj.problem.dim)
            self._radii[k] = float(np.sqrt(np.sum(p.g.ravel() ** 2 / pre)))
        for _ in range(tries):
            q, self._radii[k] = tr_iteration(obj, p, max_cg, eta, self._radii[k])
            if q is not None:
                return q
        return None

    def _solve_coarsest(self, obj: Objective, p: Point, tol: float | None = None) -> Point:
        # The coarse gradient grad E - w is a difference of two larger vectors: below
        # ~1e-13 of their size it is rounding noise, so stop there too.
        floor = 1e-13 * float(np.linalg.norm(p.g + obj.shift)) if obj.shift is not None else 0.0
        target = max((tol or self.opt.coarse_tol) * float(np.linalg.norm(p.g)), floor)
        for _ in range(self.opt.coarse_max_iter):
            if float(np.linalg.norm(p.g)) <= target:
                break
            if self.opt.smoother == "tr":
                q = self._tr_step(obj, p, max(self.opt.max_cg, p.z.size), 1e-3)
            else:
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
                if self.seed_points is not None and len(self.seed_points) >= problem.k:
                    seeds = problem.domain.clip(self.seed_points[: problem.k])
                else:
                    seeds = problem.random_generators(np.random.default_rng(0))
                start = obj.at(seeds)
                self._refs[level] = self._solve_coarsest(obj, start, 1e-10)
            else:
                below = self._reference(level + 1).z
                p = self._lloyd(obj, obj.at(_refine(below, problem)), self.opt.nested_sweeps)
                g0 = float(np.linalg.norm(p.g))
                for _ in range(self.opt.reference_cycles):
                    if float(np.linalg.norm(p.g)) <= self.opt.reference_tol * g0:
                        break
                    p = self.cycle(p, level, obj)
                self._refs[level] = p
        return self._refs[level]

    def nested_start(self) -> np.ndarray | None:
        """Full-multigrid start: the reference CVT one level down, every generator split into 2^d."""
        if len(self.sizes) < 2:
            return None
        obj = Objective(self.fine)
        return self._lloyd(obj, obj.at(_refine(self._reference(1).z, self.fine)), self.opt.nested_sweeps).z

    @staticmethod
    def _lloyd(obj: Objective, p: Point, sweeps: int) -> Point:
        for _ in range(sweeps):
            q = lloyd_iteration(obj, p)
            if q is None:
                break
            p = q
        return p

    # ------------------------------------------------------------------ the V-cycle
    def cycle(self, p: Point, level: int = 0, obj: Objective | None = None, stop_below: float = 0.0) -> Point:
        """One V-cycle from the evaluated point ``p`` on ``level``; returns the new evaluated point.

        ``stop_below`` (finest level): return as soon as a point with ||grad|| <= stop_below has
        been evaluated (skipping the rest of the cycle), so the last cycle does no extra work.
        """
        obj = obj if obj is not None else Objective(self.fine)
        problem = obj.problem
        if (self.mode == "restrict" and problem.k <= self.opt.coarsest) or (
            self.mode == "reference" and level == len(self.sizes) - 1
        ):
            return self._solve_coarsest(obj, p)
        p = self._smooth(obj, p, self.opt.nu1, stop_below)
        if float(np.linalg.norm(p.g)) <= stop_below:
            return p
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
        return self._smooth(obj, p, self.opt.nu2, stop_below)


def interpolation(z: np.ndarray, nodes: np.ndarray, problem: CVTProblem):
    """Piecewise-linear interpolation matrix from coarse generators ``nodes`` to points ``z``."""
    if problem.dim == 1:
        return _linear_1d(z, nodes)
    return _linear_2d(z, nodes, _polygon(problem).vertices)


def _refine(coarse: np.ndarray, problem: CVTProblem) -> np.ndarray:
    """k generators around the coarse ones (the nested-iteration prolongation of positions).

    1-D: every coarse generator split into two, a quarter-spacing apart. 2-D: the coarse
    generators and the midpoints of their Delaunay edges (of a hexagonal lattice this is the
    lattice of half the spacing, four times the points), with mirror images across the domain's
    edges so that boundary generators get children towards the boundary; then points are removed
    (closest pairs first) or added (midpoints of the longest edges) until there are exactly k.
    """
    k, dim = problem.k, problem.dim
    if dim == 2:
        return _refine_2d(coarse, problem)
    h = 0.25 * (problem.domain.size / max(len(coarse), 1)) ** (1.0 / dim)
    kids = (coarse[:, None] + np.array([-h, h])[None, :]).ravel()
    if len(kids) < k:  # rounding of level sizes: top up with the coarse points themselves
        kids = np.concatenate([kids, coarse[: k - len(kids)]])
    return problem.domain.clip(kids[:k])


def _polygon(problem: CVTProblem) -> ConvexPolygon:
    """The domain of a 2-D problem (2-D code paths only run with one)."""
    dom = problem.domain
    if not isinstance(dom, ConvexPolygon):
        raise TypeError(f"a 2-D multigrid step needs a polygon domain, got {type(dom).__name__}")
    return dom


def _refine_2d(coarse: np.ndarray, problem: CVTProblem) -> np.ndarray:
    k, kc = problem.k, len(coarse)
    dom = _polygon(problem)
    if kc < 3:
        rng = np.random.default_rng(0)
        return np.concatenate([coarse, dom.sample(rng, max(k - kc, 0))])[:k]
    pairs = neighbour_pairs(coarse)
    mids = 0.5 * (coarse[pairs[:, 0]] + coarse[pairs[:, 1]])
    # Gabriel edges only (no other coarse point nearer the midpoint than the ends): along a
    # nearly straight boundary row Delaunay also joins second neighbours (thin hull triangles),
    # whose midpoints fall on the generator between (at k = 256: 54 near-coincident pairs).
    half = 0.5 * np.linalg.norm(coarse[pairs[:, 0]] - coarse[pairs[:, 1]], axis=1)
    nearest, _ = cKDTree(coarse).query(mids)
    mids = mids[nearest >= (1.0 - 1e-9) * half]
    cand = np.concatenate([coarse, mids])
    # The outer row of a CVT sits half a spacing from the boundary: h_c / 2 for the coarse
    # points, h_c / 4 for the fine ones. Push points near each edge outwards by up to h_c / 4,
    # fading out over two coarse spacings, so that no boundary layer is left empty.
    hc = (dom.size / kc) ** 0.5
    dist = dom.offsets[None, :] - cand @ dom.normals.T  # (n, edges), >= 0 inside
    push = 0.25 * hc * np.clip(1.0 - (dist - 0.5 * hc) / (1.5 * hc), 0.0, 1.0)
    cand = dom.clip(cand + push @ dom.normals)
    # Match the count: drop the generators of the lightest cells, or fill the largest holes.
    while len(cand) != k:
        if len(cand) > k:
            ev = problem.with_k(len(cand)).evaluate(cand)
            cand = np.delete(cand, np.argsort(ev.masses, kind="stable")[: len(cand) - k], axis=0)
            continue
        cand = np.concatenate([cand, _holes(cand, problem, k - len(cand))])
    return cand


def _holes(z: np.ndarray, problem: CVTProblem, n: int) -> np.ndarray:
    """Up to ``n`` new points in the largest holes of ``z``: each cell's farthest vertex (on the
    domain boundary: half way to it), largest distance x rho^(1/4) first (the
    CVT spacing scales as rho^(-1/4) in 2-D), no two closer than half a local spacing."""
    cells = clip_cells(z, _polygon(problem))
    m = cells.verts.shape[1]
    valid = np.arange(m)[None, :] < cells.count[:, None]
    r = np.where(valid, np.linalg.norm(cells.verts, axis=2), -1.0)
    j = np.argmax(r, axis=1)
    rows = np.arange(len(cells.points))
    v = cells.verts[rows, j]
    # a vertex is on the boundary if either edge through it is a boundary edge
    on_bd = (cells.labels[rows, j] == -1) | (cells.labels[rows, (j - 1) % np.maximum(cells.count, 1)] == -1)
    new = cells.points + np.where(on_bd[:, None], 0.5, 1.0) * v
    score = r[rows, j] * problem.density(new) ** 0.25
    picked = np.zeros((0, 2))
    for i in np.argsort(-score, kind="stable"):
        if len(picked) == n:
            break
        if not len(picked) or np.min(np.linalg.norm(picked - new[i], axis=1)) >= 0.5 * r[i, j[i]]:
            picked = np.vstack([picked, new[i]])
    return problem.domain.clip(picked)

