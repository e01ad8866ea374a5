"""The solvers of the companding-quantizer problem and ``solve(source, method, levels, **options)``.

Each solver returns a :class:`~baselines.compander.result.QuantizerResult`; ``source`` is
``"gaussian"``, ``"laplacian"``, another registered name, or a
:class:`~quant_envs.compander.sources.Source`:

* :func:`lloyd_max` -- the optimal N-level quantizer (Lloyd 1957/1982, Max 1960): Lloyd iteration
  on the centroid and midpoint conditions with closed-form cell moments, finished by Newton's
  method on the same fixed point, to a fixed-point residual of 1e-12 (the model's
  :func:`~quant_envs.compander.lloyd.solve_lloyd_max`, reported here);
* :func:`optimal_compander` -- the compander with compressor c(x) ~ integral f^(1/3) and its
  support region x_max chosen for the highest exact SQNR;
* :func:`~baselines.compander.spline.spline_compander` -- the spline approximation of the optimal
  compressor (Velimirovic et al. 2012) with its segment thresholds searched;
* :func:`mu_law`, :func:`a_law` -- G.711 companders (mu = 255, A = 87.6) with optimised loading;
* :func:`panter_dite_sqnr_db` -- the high-resolution asymptote 10 log10(12 N^2 / (int f^(1/3))^3).

``SOLVERS`` maps each name of ``METHODS`` to its function and the options it takes; adding a
solver is one function and one line there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from baselines.compander.result import QuantizerResult, make_result
from baselines.compander.spline import spline_compander
from baselines.result import Solver, registered
from quant_envs.checks import check_float, check_int
from quant_envs.compander.compressor import (
    ALawCompressor,
    Compressor,
    MuLawCompressor,
    OptimalCompressor,
    compander_distortion,
    optimal_support,
    panter_dite_distortion,
)
from quant_envs.compander.lloyd import (
    DEFAULT_MAX_ITER,
    DEFAULT_METHOD,
    DEFAULT_TOL,
    solve_lloyd_max,
)
from quant_envs.compander.quantizer import distortion, sqnr_db
from quant_envs.compander.sources import Source, get_source

__all__ = [
    "METHODS",
    "SOLVERS",
    "Solver",
    "a_law",
    "lloyd_max",
    "mu_law",
    "optimal_compander",
    "panter_dite_sqnr_db",
    "solve",
    "spline_compander",
]


# ---- Lloyd-Max ----------------------------------------------------------------------------------


def lloyd_max(
    source: str | Source, levels: int, *, tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER, method: str = DEFAULT_METHOD
) -> QuantizerResult:
    """The Lloyd-Max (minimum mean squared error) quantizer with ``levels`` output levels.

    Starts from the high-resolution optimal thresholds (quantiles of f^(1/3)), iterates the Lloyd
    map t <- midpoints(centroids(t)) and, with ``method="newton"`` (default), switches to Newton's
    method on the same fixed point after three Lloyd steps; ``method="lloyd"`` is plain Lloyd
    iteration. Stops when the fixed-point residual max|T(t) - t| <= ``tol`` (in units of the
    source's standard deviation); after ``max_iter`` steps without that, ``success`` is False and
    ``status`` 1. ``params`` reports ``residual``, ``lloyd_iterations`` and ``newton_iterations``.
    """
    started = time.perf_counter()
    src = get_source(source)
    n = check_int("levels", levels, min_value=2)
    sol = solve_lloyd_max(src, n, tol=tol, max_iter=max_iter, method=method)
    steps = sol.lloyd_iterations + sol.newton_iterations
    if sol.converged:
        status, message = 0, f"fixed-point residual {sol.residual:.3g} <= tol={tol:g}"
    elif steps >= max_iter:
        status, message = 1, f"max_iter={max_iter} steps reached with fixed-point residual {sol.residual:.3g} > tol={tol:g}"
    else:  # Newton and Lloyd steps both stopped reducing the residual (rounding level)
        status, message = 3, f"fixed-point residual {sol.residual:.3g} stalled above tol={tol:g} at rounding level"
    return make_result(
        "lloyd_max",
        src,
        n,
        sol.thresholds,
        sol.levels,
        distortion(src, sol.thresholds, sol.levels),
        None,
        iterations=steps,
        evaluations=sol.map_evaluations,
        started=started,
        params={
            "residual": sol.residual,
            "tol": tol,
            "method": method,
            "lloyd_iterations": sol.lloyd_iterations,
            "newton_iterations": sol.newton_iterations,
        },
        message=message,
        status=status,
    )


# ---- companders with optimised loading ----------------------------------------------------------


def _compander(
    method: str,
    src: Source,
    n: int,
    make: Callable[[float], Compressor],
    support: float | None,
    started: float,
    params: dict[str, Any],
) -> QuantizerResult:
    """The compander ``make(x_max)`` at the loading x_max of best exact SQNR, or at ``support``."""
    if support is None:
        search = optimal_support(src, make, n)
        x_max, evals, dist = search.x_max, search.evaluations, search.distortion
        message = "support region x_max searched for the highest exact SQNR"
    else:
        x_max = check_float("support", support, min_value=0.0, min_inclusive=False)
        evals, dist = 1, compander_distortion(src, make(x_max), n)
        message = "support region x_max fixed by support"
    t, y = make(x_max).quantizer(n)
    params = {**params, "support_optimized": support is None}
    return make_result(method, src, n, t, y, dist, x_max, iterations=1, evaluations=evals, started=started, params=params, message=message)


def optimal_compander(source: str | Source, levels: int, *, support: float | None = None) -> QuantizerResult:
    """The optimal compander: c(x) = x_max R(x) / R(x_max), R(x) = integral_0^x f^(1/3).

    Its support region x_max maximises the exact SQNR (granular + overload) unless ``support``
    fixes it. ``params["panter_dite_sqnr_db"]`` is the high-resolution asymptote at this N.
    """
    started = time.perf_counter()
    src = get_source(source)
    n = check_int("levels", levels, min_value=2)
    return _compander(
        "optimal_compander",
        src,
        n,
        lambda x: OptimalCompressor(source=src, x_max=x),
        support,
        started,
        {"panter_dite_sqnr_db": panter_dite_sqnr_db(src, n)},
    )


def mu_law(source: str | Source, levels: int, *, mu: float = 255.0, support: float | None = None) -> QuantizerResult:
    """mu-law compander (G.711: mu = 255) with the loading x_max that maximises the exact SQNR."""
    started = time.perf_counter()
    src = get_source(source)
    n = check_int("levels", levels, min_value=2)
    mu = check_float("mu", mu, min_value=0.0, min_inclusive=False)
    return _compander("mu_law", src, n, lambda x: MuLawCompressor(x_max=x, mu=mu), support, started, {"mu": mu})


def a_law(source: str | Source, levels: int, *, a: float = 87.6, support: float | None = None) -> QuantizerResult:
    """A-law compander (G.711: A = 87.6) with the loading x_max that maximises the exact SQNR."""
    started = time.perf_counter()
    src = get_source(source)
    n = check_int("levels", levels, min_value=2)
    a = check_float("a", a, min_value=1.0)
    return _compander("a_law", src, n, lambda x: ALawCompressor(x_max=x, a=a), support, started, {"a": a})


def panter_dite_sqnr_db(source: str | Source, levels: int) -> float:
    """SQNR of the Panter-Dite asymptote, 10 log10(12 N^2 / (integral f^(1/3))^3), in dB."""
    return sqnr_db(panter_dite_distortion(source, levels))


# ---- the registry and solve() -------------------------------------------------------------------


SOLVERS: dict[str, Solver] = {
    "lloyd_max": Solver(lloyd_max, ("tol", "max_iter", "method")),
    "optimal_compander": Solver(optimal_compander, ("support",)),
    "mu_law": Solver(mu_law, ("mu", "support")),
    "a_law": Solver(a_law, ("a", "support")),
    "spline_compander": Solver(
        spline_compander,
        ("degree", "segments", "fit", "support", "segment_thresholds", "optimize_thresholds", "grid", "seed"),
    ),
}
METHODS: tuple[str, ...] = tuple(SOLVERS)


def solve(source: str | Source, method: str, /, levels: int, **options: Any) -> QuantizerResult:
    """Design an N-level quantizer for ``source`` with ``method`` (one of ``METHODS``).

    ``options`` are the keyword arguments of that method's function (``SOLVERS[method].options``);
    any other raises :class:`~baselines.result.UnknownOptionError` naming the allowed ones.
    ``source`` and ``method`` are positional-only, so Lloyd-Max's own ``method`` option
    (``"newton"`` or ``"lloyd"``) passes through: ``solve("gaussian", "lloyd_max", 8, method="lloyd")``.
    The result's ``method`` is the name here, except that the spline compander's carries its degree
    (``"spline_compander_deg2"``), as it always has.
    """
    solver = registered(method, SOLVERS)
    return solver.run(source, levels, **solver.accepted(method, options))
