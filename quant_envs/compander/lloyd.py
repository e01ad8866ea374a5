"""The Lloyd-Max optimality conditions and their fixed point.

An N-level quantizer is a stationary point of the mean squared error when

* every output level is the centroid of its cell:   y_i = E[X | t_{i-1} < X <= t_i], and
* every threshold is the midpoint of its levels:    t_i = (y_i + y_{i+1}) / 2.

Composing the two gives the *Lloyd map* T on the thresholds; Lloyd-Max quantizers are its fixed
points (for log-concave densities, the Gaussian and Laplacian among them, the fixed point is
unique and is the global optimum). Plain Lloyd iteration t <- T(t) converges linearly, and slowly
for large N (the contraction factor tends to 1 like 1 - O(1/N^2)). The map's Jacobian is
tridiagonal with closed-form entries

    d y_i / d t_{i-1} = f(t_{i-1}) (y_i - t_{i-1}) / P_i,   d y_i / d t_i = f(t_i) (t_i - y_i) / P_i,

so Newton's method on T(t) - t = 0 costs one banded solve per step and converges quadratically.

Sources here are symmetric, and so are their Lloyd-Max quantizers (t_i = -t_{N-i}); iterates are
kept exactly antisymmetric. This matters for the Laplacian with even N: cells on one side of zero
see an exponential density, whose conditional mean moves *with* a shift of the cell, so the
Jacobian of T has the uniform shift as an eigenvector with eigenvalue 1 and T(t) - t is singular
along it. That direction is symmetric; restricted to antisymmetric thresholds Newton is regular.
:func:`solve_lloyd_max` runs Lloyd iterations from the asymptotically optimal (compander) start
and finishes with safeguarded Newton steps, down to a fixed-point residual max|T(t) - t| of
about machine precision.

This lives in the problem model (not in ``baselines``) because the ScalarQuantizer environment
needs the optimum as its reference value and environments never import solvers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_banded

from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.compander.quantizer import cell_moments
from quant_envs.compander.sources import Source, get_source

__all__ = [
    "DEFAULT_MAX_ITER",
    "DEFAULT_METHOD",
    "DEFAULT_TOL",
    "LloydMaxSolution",
    "asymptotic_thresholds",
    "lloyd_map",
    "lloyd_residual",
    "solve_lloyd_max",
]

# Defaults of solve_lloyd_max, shared with the baseline solver that reports them (set once, here).
DEFAULT_TOL = 1e-12  # fixed-point residual max|T(t) - t|, in units of the source's sigma
DEFAULT_MAX_ITER = 200_000  # Lloyd plus Newton steps
DEFAULT_METHOD = "newton"  # "newton" (Lloyd warm-up, then Newton) or "lloyd" (plain iteration)


def lloyd_map(source: Source, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One Lloyd step: centroids of the current cells, then their midpoints.

    Returns ``(new_thresholds, levels)``, the levels being the centroids of the *input* cells.
    """
    p, m1, _ = cell_moments(source, thresholds)
    y = m1 / p
    return 0.5 * (y[:-1] + y[1:]), y


def lloyd_residual(source: Source, thresholds: np.ndarray) -> float:
    """max |T(t) - t|: zero exactly at a Lloyd-Max quantizer."""
    new, _ = lloyd_map(source, thresholds)
    return float(np.max(np.abs(new - thresholds)))


def _newton_step(source: Source, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newton direction for F(t) = T(t) - t, and F(t) itself."""
    p, m1, _ = cell_moments(source, t)
    y = m1 / p
    f = source.pdf(t)
    tt = 0.5 * (y[:-1] + y[1:])
    resid = tt - t
    n1 = t.size
    # Jacobian of T: row i depends on t_{i-1}, t_i, t_{i+1} through cells i and i+1.
    lower = 0.5 * f[:-1] * (y[1:-1] - t[:-1]) / p[1:-1]  # dT_i / dt_{i-1}, i = 1..n1-1
    diag = 0.5 * f * ((t - y[:-1]) / p[:-1] + (y[1:] - t) / p[1:])
    upper = 0.5 * f[1:] * (t[1:] - y[1:-1]) / p[1:-1]  # dT_i / dt_{i+1}, i = 0..n1-2
    ab = np.zeros((3, n1))
    ab[0, 1:] = upper
    ab[1, :] = diag - 1.0
    ab[2, :-1] = lower
    step = solve_banded((1, 1), ab, -resid)
    return _antisymmetric(step), resid


def _antisymmetric(t: np.ndarray) -> np.ndarray:
    """Nearest vector with t_i = -t_{N-i}: the symmetry every Lloyd-Max quantizer here has."""
    return 0.5 * (t - t[::-1])


def asymptotic_thresholds(source: Source, levels: int) -> np.ndarray:
    """Thresholds with the high-resolution optimal point density (proportional to f^(1/3)).

    The i-th threshold splits the mass of the normalised f^(1/3) at i / N: the optimal compander
    without a support limit. An excellent start for Lloyd iteration at any N.
    """
    n = levels
    half = source.cube_root_total()
    u = np.arange(1, n) / n  # fractions of the total mass 2 * half
    v = (u - 0.5) * 2.0 * half
    x = source.cube_root_integral_inv(np.abs(v))
    return _antisymmetric(np.sign(v) * x)


@dataclass(frozen=True)
class LloydMaxSolution:
    """Fixed point of the Lloyd map with its convergence record."""

    thresholds: np.ndarray
    levels: np.ndarray
    residual: float
    converged: bool
    lloyd_iterations: int
    newton_iterations: int
    map_evaluations: int


def solve_lloyd_max(
    source: str | Source,
    levels: int,
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    method: str = DEFAULT_METHOD,
    initial_thresholds: np.ndarray | None = None,
) -> LloydMaxSolution:
    """Lloyd-Max quantizer for ``source`` with ``levels`` output levels.

    ``method="lloyd"`` runs plain Lloyd iteration until max|T(t) - t| <= tol (or ``max_iter``);
    ``method="newton"`` (default) does a few Lloyd steps and then safeguarded Newton steps on the
    same fixed-point equation, falling back to a Lloyd step whenever Newton would not reduce the
    residual or would break the ordering of the thresholds.
    """
    src = get_source(source)
    n = check_int("levels", levels, min_value=2)
    tol = check_float("tol", tol, min_value=0.0, min_inclusive=False)
    max_iter = check_int("max_iter", max_iter, min_value=1)
    check_choice("method", method, ["newton", "lloyd"])
    if initial_thresholds is None:
        t = asymptotic_thresholds(src, n)
    else:
        t = np.asarray(initial_thresholds, dtype=float).reshape(-1)
        if t.size != n - 1 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
            raise ValueError(
                f"initial_thresholds must hold {n - 1} finite strictly increasing values; got {t.tolist()!r}"
            )
        t = _antisymmetric(t)
    lloyd_its = newton_its = evals = 0
    new, y = lloyd_map(src, t)
    evals += 1
    resid = float(np.max(np.abs(new - t)))
    warmup = 3  # a few contracting Lloyd steps before Newton
    while resid > tol and lloyd_its + newton_its < max_iter:
        if method == "newton" and lloyd_its >= warmup:
            step, _ = _newton_step(src, t)
            evals += 1
            accepted = False
            lam = 1.0
            for _ in range(8):  # backtracking on the residual
                cand = t + lam * step
                if np.all(np.diff(cand) > 0) and np.all(np.isfinite(cand)):
                    cand_new, cand_y = lloyd_map(src, cand)
                    evals += 1
                    cand_res = float(np.max(np.abs(cand_new - cand)))
                    if cand_res < resid:
                        t, new, y, resid = cand, cand_new, cand_y, cand_res
                        accepted = True
                        break
                lam *= 0.5
            if accepted:
                newton_its += 1
                continue
            if resid < 64 * np.finfo(float).eps * max(1.0, float(np.max(np.abs(t)))):
                break  # at rounding level: no step can reduce the residual further
        t = _antisymmetric(new)
        new, y = lloyd_map(src, t)
        evals += 1
        resid = float(np.max(np.abs(new - t)))
        lloyd_its += 1
    _, levels_out = lloyd_map(src, t)
    return LloydMaxSolution(
        thresholds=t,
        levels=levels_out,
        residual=resid,
        converged=resid <= tol,
        lloyd_iterations=lloyd_its,
        newton_iterations=newton_its,
        map_evaluations=evals + 1,
    )
