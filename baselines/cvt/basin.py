"""MG/Opt's local rate, measured apart from the nonconvex phase of a 2-D CVT solve.

Why this exists: from a random or nested start, a 2-D CVT solve first crosses a nonconvex phase
(edge flips, pockets of negative curvature, a slow collective rotation of the lattice; see
:mod:`baselines.cvt.multigrid`) whose length grows with k and changes with the seed and even with
the machine's rounding. MG/Opt's uniform-convergence argument (Di, Emelianenko & Nash 2012;
Nash 2000) is local: it holds in the basin of a nondegenerate minimiser. To test that claim on
its own, :func:`basin_run` perturbs a computed CVT z* by a small fraction of the generator
spacing (a smooth part and a rough part, so that both ends of the spectrum are excited) and runs
the same V-cycles from there, beside truncated Newton alone (the V-cycle's smoother with the same
CG settings and no coarse levels). Where the coarse levels do their job, the V-cycle count stays
flat in k while the smoother alone needs more iterations as k grows (its CG cap cannot resolve the
smoothest modes, whose scaled eigenvalue falls like 1 / k).

The basin is small: at a perturbation of 10 % of the spacing a Gaussian-density CVT with
k = 1024 already ends in another minimum (0.96 spacings away). The run records how far the end
point is from z* (``returned``), so a run that left the basin is visible, not silently counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from baselines.cvt._core import Objective, tn_iteration
from baselines.cvt.multigrid import MGOptions
from baselines.cvt.solvers import CVTResult, CVTSolver, _Budget, _result, _Stop, run_solver, solve
from quant_envs.checks import check_float, check_int
from quant_envs.cvt import CVTProblem


def spacing(problem: CVTProblem) -> float:
    """The mean generator spacing (size / k)^(1/d): the unit of perturbations and distances here."""
    return float((problem.domain.size / problem.k) ** (1.0 / problem.dim))


def perturb(problem: CVTProblem, z: np.ndarray, amplitude: float, seed: int = 0) -> np.ndarray:
    """``z`` moved by ``amplitude`` spacings of a smooth field plus as much uniform noise, clipped.

    The smooth field is sin(pi u) sin(2 pi v), sin(2 pi u) sin(pi v) in the unit coordinates of the
    domain's bounding box (1-D: sin(2 pi u)), a long-wave mode the coarse levels must carry.
    """
    z = problem.check_generators(z, "z")
    check_float("amplitude", amplitude, min_value=0.0)
    check_int("seed", seed, min_value=0)
    rng = np.random.default_rng(seed)
    u = problem.domain.to_unit(z)
    if problem.dim == 1:
        smooth = np.sin(2.0 * np.pi * u)
    else:
        smooth = np.stack([np.sin(np.pi * u[:, 0]) * np.sin(2.0 * np.pi * u[:, 1]),
                           np.sin(2.0 * np.pi * u[:, 0]) * np.sin(np.pi * u[:, 1])], axis=1)
    noise = rng.uniform(-1.0, 1.0, size=z.shape)
    return problem.domain.clip(z + amplitude * spacing(problem) * (smooth + noise))


def _truncated_newton(problem: CVTProblem, z: np.ndarray, tol: float, max_iter: int, max_time_s: float | None,
                      start: float, max_cg: int = 50, eta: float = 0.01) -> CVTResult:
    """Runner (the shape of :data:`baselines.cvt.SOLVERS`' runners): truncated-Newton steps alone."""
    obj = Objective(problem)
    budget = _Budget(max_iter, max_time_s, start)
    p = obj.at(z)
    norms, energies = [float(np.linalg.norm(p.g))], [p.f]
    target = tol * norms[0]
    it, stop = 0, None
    while norms[-1] > target:
        stop = budget.reason(it)
        if stop is not None:
            break
        q = tn_iteration(obj, p, max_cg, eta)
        if q is None:
            stop = _Stop(3, f"no descent along the truncated-Newton direction after {it} iterations")
            break
        p, it = q, it + 1
        norms.append(float(np.linalg.norm(p.g)))
        energies.append(p.f)
    return _result("truncated-newton", problem, p.z, p.f, it, norms, energies, start, tol, stop)


#: Kept out of ``SOLVERS``: the study and its convergence table run every registered method.
TRUNCATED_NEWTON = CVTSolver(_truncated_newton, ("max_cg", "eta"), 500)


def truncated_newton(problem: CVTProblem, z0: np.ndarray, tol: float = 1e-8, max_iter: int = 500,
                     max_cg: int = 50, eta: float = 0.01) -> CVTResult:
    """Truncated Newton alone (MG/Opt's 2-D smoother, the same ``max_cg`` and ``eta``), as a CVTResult.

    Checks, stopping rule and timing as in :func:`baselines.cvt.solve`: ||grad|| <= tol ||grad(z0)||.
    """
    return run_solver("truncated-newton", problem, tol, max_iter, None, z0, None, {"max_cg": max_cg, "eta": eta},
                      TRUNCATED_NEWTON)


@dataclass(frozen=True)
class BasinRun:
    """One in-basin measurement: both solvers from the same perturbed CVT."""

    amplitude: float  # perturbation, in spacings
    multigrid: CVTResult  # MG/Opt V-cycles from the perturbed point (start="given")
    newton: CVTResult  # truncated Newton alone from the same point
    returned: float  # largest distance of the multigrid end point from z*, in spacings

    @property
    def stayed(self) -> bool:
        """Whether multigrid came back to z* (to 1e-3 spacings), i.e. the start was in its basin."""
        return self.returned <= 1e-3


def basin_run(problem: CVTProblem, z_star: np.ndarray, amplitude: float = 0.02, seed: int = 0,
              tol: float = 1e-8, max_cycles: int = 100) -> BasinRun:
    """Perturb the CVT ``z_star`` by ``amplitude`` spacings and solve back with both methods."""
    z_star = problem.check_generators(z_star, "z_star")
    z0 = perturb(problem, z_star, amplitude, seed)
    opts = MGOptions().resolved(problem.dim)
    mg = solve(problem, "multigrid", tol=tol, z0=z0, max_iter=max_cycles, start="given")
    tn = truncated_newton(problem, z0, tol, max_iter=max_cycles * (opts.nu1 + opts.nu2 + 1),
                          max_cg=opts.max_cg, eta=opts.eta)
    gap = np.abs(np.asarray(mg.generators) - z_star)
    dist = gap if problem.dim == 1 else np.linalg.norm(gap, axis=1)
    return BasinRun(amplitude, mg, tn, float(np.max(dist)) / spacing(problem))
