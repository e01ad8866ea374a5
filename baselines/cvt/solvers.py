"""``solve(problem, method, ...)``: Lloyd, L-BFGS and MG/Opt multigrid on a CVT problem.

Stopping rule, the same for every method: ||grad E(z)||_2 <= tol * ||grad E(z0)||_2, the gradient
norm relative to the one at the common starting generators z0 (drawn from the problem's domain
with ``seed`` unless given). A run also stops at ``max_iter`` iterations or ``max_time_s``
seconds; ``converged`` (``success``) says whether the rule held and ``status`` which cap stopped
it (0 converged, 1 iteration cap, 2 time cap, 3 L-BFGS line search stalled).

Work is counted in fine-level cell passes: every evaluation of the energy/gradient (one pass
gives both) or of the Hessian on the problem itself is one unit. Multigrid's coarse-level
passes are reported apart in ``coarse_work`` (weighted by k_level / k, i.e. in fine-pass
equivalents).

Each method is one runner function plus one line of :data:`SOLVERS` (its options and default
iteration cap); :data:`METHODS` is that registry's keys.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple

import numpy as np
import scipy.optimize

from baselines.cvt._core import Objective
from baselines.cvt.multigrid import MGOpt, MGOptions
from baselines.result import Solver, SolveResult, registered
from quant_envs.checks import check_float, check_int
from quant_envs.cvt import CVTEvaluation, CVTProblem

_LBFGS_RESTARTS = 5


class CVTResult(SolveResult):
    """Outcome of one CVT solve: a :class:`baselines.result.SolveResult` with the CVT's own names.

    Core fields and their older names (both work, for reading and writing)::

        x    generators   the generators, shape (k,) sorted in 1-D or (k, 2) in 2-D
        fun  energy       E(x)
        nit  iterations   Lloyd steps, L-BFGS iterations, or multigrid V-cycles
        nfev work         fine-level cell passes (energy/gradient or Hessian evaluations)
        success converged whether ||grad E|| <= tol * ||grad E(z0)|| was reached

    Extras: ``grad_norms`` (||grad E|| at z0 and after every iteration), ``tol``, ``coarse_work``
    (multigrid: coarse-level passes in fine-pass equivalents), ``energies`` (E at each
    ``grad_norms`` entry), ``work_history`` (work + coarse work at each ``grad_norms`` entry) and
    ``cpu_time_s`` (process CPU time, robust to other load on the machine, unlike wall time).
    """

    aliases: ClassVar[dict[str, str]] = {
        "generators": "x", "energy": "fun", "iterations": "nit", "work": "nfev", "converged": "success",
    }
    objective: ClassVar[str] = "CVT energy E(z), minimised"

    @property
    def rel_grad_norm(self) -> float:
        """Final ||grad E|| / ||grad E(z0)||."""
        return float(self.grad_norms[-1] / self.grad_norms[0]) if self.grad_norms[0] > 0 else 0.0

    @property
    def total_work(self) -> float:
        return self.work + self.coarse_work


def solve(
    problem: CVTProblem,
    method: str,
    tol: float = 1e-8,
    max_iter: int | None = None,
    seed: int | None = 0,
    *,
    z0: Any = None,
    max_time_s: float | None = None,
    **options: Any,
) -> CVTResult:
    """Compute a CVT of ``problem`` with ``method`` in {"lloyd", "lbfgs", "multigrid"}.

    Parameters
    ----------
    tol:
        Relative gradient-norm tolerance (relative to the gradient at the starting generators).
    max_iter:
        Iteration cap (default: 100000 for Lloyd and L-BFGS, 200 V-cycles for multigrid).
    seed:
        Seed of the random starting generators (uniform on the domain); ignored if ``z0`` is given.
    z0:
        Starting generators, shape (k,) in 1-D or (k, 2) in 2-D.
    max_time_s:
        Wall-clock cap in seconds (None: no cap).
    options:
        ``lbfgs``: ``memory`` (10). ``multigrid``: the fields of
        :class:`baselines.cvt.multigrid.MGOptions` (nu1, nu2, max_cg, eta, coarsest, ...). ``lloyd``
        takes none. Any other option raises :class:`baselines.result.UnknownOptionError` naming the
        method's options (:data:`SOLVERS` lists them).
    """
    return run_solver(method, problem, tol, max_iter, seed, z0, max_time_s, options)


def run_solver(method: str, problem: CVTProblem, tol: float, max_iter: int | None, seed: int | None, z0: Any,
               max_time_s: float | None, options: dict[str, Any], solver: CVTSolver | None = None) -> CVTResult:
    """:func:`solve`'s body: check the arguments, draw or check z0, run ``method`` (looked up in
    :data:`SOLVERS` unless ``solver`` is given, for runners kept out of the registry such as
    :mod:`baselines.cvt.basin`'s truncated Newton) on a private copy of ``problem`` (its counter
    is the run's work), and time the CPU."""
    if not isinstance(problem, CVTProblem):
        raise TypeError(f"problem={problem!r} must be a quant_envs.cvt.CVTProblem")
    if solver is None:
        solver = registered(method, SOLVERS)
    options = solver.accepted(method, options)
    tol = check_float("tol", tol, min_value=0.0)
    max_iter = solver.max_iter if max_iter is None else check_int("max_iter", max_iter, min_value=0)
    if max_time_s is not None:
        max_time_s = check_float("max_time_s", max_time_s, min_value=0.0, min_inclusive=False)
    if z0 is None:
        if seed is not None:
            check_int("seed", seed, min_value=0)
        z0 = problem.random_generators(np.random.default_rng(seed))
    z0 = problem.check_generators(z0, "z0").copy()
    own = problem.with_k(problem.k)  # a private copy: its counter is this run's work
    cpu0 = time.process_time()
    start = time.perf_counter()
    res = solver.run(own, z0, tol, max_iter, max_time_s, start, **options)
    res.cpu_time_s = time.process_time() - cpu0
    return res


class _Stop(NamedTuple):
    """Why a run stopped short of the tolerance: a SolveResult status code and a message."""

    status: int  # 1 iteration cap, 2 time cap, 3 other (L-BFGS stalled)
    message: str


class _Budget:
    def __init__(self, max_iter: int, max_time_s: float | None, start: float) -> None:
        self.max_iter, self.max_time_s, self.start = max_iter, max_time_s, start

    def reason(self, it: int) -> _Stop | None:
        if it >= self.max_iter:
            return _Stop(1, f"did not converge within {self.max_iter} iterations")
        if self.max_time_s is not None and time.perf_counter() - self.start > self.max_time_s:
            return _Stop(2, f"did not converge within {self.max_time_s:g} s ({it} iterations)")
        return None


def _result(method: str, problem: CVTProblem, z: np.ndarray, energy: float, it: int, norms: Sequence[float],
            energies: Sequence[float], start: float, tol: float, stop: _Stop | None, coarse: float = 0.0,
            works: Sequence[float] | np.ndarray = ()) -> CVTResult:
    converged = stop is None
    status, message = (0, "converged") if stop is None else (stop.status, stop.message)
    return CVTResult(
        method=method,
        generators=np.sort(z) if problem.dim == 1 else z,
        energy=float(energy),
        iterations=it,
        work=problem.n_evaluations,
        grad_norms=np.asarray(norms, dtype=float),
        wall_time_s=time.perf_counter() - start,
        converged=converged,
        status=status,
        message=message,
        tol=tol,
        coarse_work=coarse,
        energies=np.asarray(energies, dtype=float),
        work_history=np.asarray(works, dtype=float),
        cpu_time_s=0.0,  # set by solve() once the runner returns
    )


def _lloyd(problem: CVTProblem, z: np.ndarray, tol: float, max_iter: int, max_time_s: float | None,
           start: float) -> CVTResult:
    """Lloyd's method: move every generator to its cell's centroid."""
    budget = _Budget(max_iter, max_time_s, start)
    ev = problem.evaluate(z)
    norms, energies = [float(np.linalg.norm(ev.gradient))], [ev.energy]
    target = tol * norms[0]
    it = 0
    stop = None
    while norms[-1] > target:
        stop = budget.reason(it)
        if stop is not None:
            break
        z = ev.centroids
        ev = problem.evaluate(z)
        it += 1
        norms.append(float(np.linalg.norm(ev.gradient)))
        energies.append(ev.energy)
    works = np.arange(1, len(norms) + 1)
    return _result("lloyd", problem, z, ev.energy, it, norms, energies, start, tol, stop, works=works)


@dataclass
class _LBFGSState:
    """What the L-BFGS runner shares with scipy's callbacks."""

    best_x: np.ndarray  # the latest iterate (flat) and its energy
    best_f: float
    it: int = 0  # iterations over all restarts
    stop: _Stop | None = None  # set when the budget runs out
    last_x: np.ndarray | None = None  # the last point fun() evaluated, and its evaluation (reused
    last_ev: CVTEvaluation | None = None  # by the callback, which is handed that same point)


def _lbfgs(problem: CVTProblem, z: np.ndarray, tol: float, max_iter: int, max_time_s: float | None,
           start: float, memory: int = 10) -> CVTResult:
    """L-BFGS-B (scipy) on E with box bounds (the interval, or the polygon's bounding box).

    scipy's own tests are switched off (gtol = ftol = 0); the relative gradient test runs in the
    callback. scipy's line search compares energies, so it stops once a step's energy decrease
    falls below the energy's rounding error (it reports "relative reduction of f <= factr*epsmch");
    L-BFGS is then restarted from the last point with a fresh memory, up to 5 times while a
    restart still lowers the gradient norm by 10 %, and otherwise reported as not converged.
    """
    memory = check_int("memory", memory, min_value=1)
    budget = _Budget(max_iter, max_time_s, start)
    shape = problem.shape

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        ev = problem.evaluate(x.reshape(shape))
        state.last_x, state.last_ev = x.copy(), ev
        return ev.energy, ev.gradient.ravel()

    ev0 = problem.evaluate(z)
    norms, energies = [float(np.linalg.norm(ev0.gradient))], [ev0.energy]
    works = [problem.n_evaluations]
    target = tol * norms[0]
    state = _LBFGSState(best_x=z.ravel().copy(), best_f=ev0.energy)

    def callback(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        x = intermediate_result.x
        ev = state.last_ev
        if ev is None or state.last_x is None or not np.array_equal(state.last_x, x):
            ev = problem.evaluate(x.reshape(shape))
        state.it += 1
        norms.append(float(np.linalg.norm(ev.gradient)))
        energies.append(ev.energy)
        works.append(problem.n_evaluations)
        state.best_x, state.best_f = x.copy(), ev.energy
        if norms[-1] <= target:
            raise StopIteration
        reason = budget.reason(state.it)
        if reason is not None:
            state.stop = reason
            raise StopIteration

    lo, hi = problem.domain.bounds
    bounds = scipy.optimize.Bounds(np.tile(lo, problem.k), np.tile(hi, problem.k))
    x = z.ravel().copy()
    stop = None
    for _ in range(_LBFGS_RESTARTS + 1):
        if norms[-1] <= target:
            break
        before = norms[-1]
        res = scipy.optimize.minimize(
            fun, x, jac=True, method="L-BFGS-B", bounds=bounds, callback=callback,
            options={"maxcor": memory, "maxiter": max(max_iter - state.it, 1), "maxfun": 10**9,
                     "gtol": 0.0, "ftol": 0.0},
        )
        x = state.best_x
        stop = state.stop
        if stop is not None or norms[-1] <= target:
            break
        stop = _Stop(3, f"scipy L-BFGS-B stopped, no measurable energy decrease: {res.message}")
        if norms[-1] > 0.9 * before:  # a restart with fresh memory no longer helps
            break
    if norms[-1] <= target:
        stop = None
    z = x.reshape(shape)
    return _result("lbfgs", problem, z, state.best_f, state.it, norms, energies, start, tol, stop, works=works)


def _multigrid(problem: CVTProblem, z: np.ndarray, tol: float, max_iter: int, max_time_s: float | None,
               t_start: float, **options: Any) -> CVTResult:
    """MG/Opt V-cycles (see :mod:`baselines.cvt.multigrid`) until the relative gradient test holds."""
    opts = MGOptions(**options)
    budget = _Budget(max_iter, max_time_s, t_start)
    mg = MGOpt(problem, opts, seed_points=z)
    p = Objective(problem).at(z)
    norms, energies = [float(np.linalg.norm(p.g))], [p.f]
    works: list[float] = [problem.n_evaluations]
    target = tol * norms[0]
    it = 0
    stop = None
    if mg.opt.start == "nested" and norms[-1] > target:
        # Full multigrid: z0 seeds the coarsest level and sets the reference gradient norm; the
        # V-cycles start from the refined coarse CVT (its cost is in coarse_work).
        z_nested = mg.nested_start()
        if z_nested is not None:
            q = Objective(problem).at(z_nested)
            if q.f < p.f:
                p = q
    while norms[-1] > target:
        stop = budget.reason(it)
        if stop is not None:
            break
        p = mg.cycle(p, stop_below=target)
        it += 1
        norms.append(float(np.linalg.norm(p.g)))
        energies.append(p.f)
        works.append(problem.n_evaluations + mg.coarse_work())
    coarse = mg.coarse_work()
    return _result("multigrid", problem, p.z, p.f, it, norms, energies, t_start, tol, stop, coarse, works)


@dataclass(frozen=True)
class CVTSolver(Solver):
    """One CVT method: its runner, the options it takes and its default iteration cap."""

    max_iter: int


#: Every method: adding one is a runner above and a line here.
SOLVERS: dict[str, CVTSolver] = {
    "lloyd": CVTSolver(_lloyd, (), 100_000),
    "lbfgs": CVTSolver(_lbfgs, ("memory",), 100_000),
    "multigrid": CVTSolver(_multigrid, tuple(f.name for f in fields(MGOptions)), 200),
}
METHODS: tuple[str, ...] = tuple(SOLVERS)
DEFAULT_MAX_ITER: dict[str, int] = {name: s.max_iter for name, s in SOLVERS.items()}
