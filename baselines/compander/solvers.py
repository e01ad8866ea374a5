"""Non-RL solvers for companding scalar quantizers, and the comparison table and figure.

Solvers (each returns a :class:`QuantizerResult`; ``source`` is ``"gaussian"``, ``"laplacian"``,
another registered name, or a :class:`~quant_envs.compander.sources.Source`):

* :func:`lloyd_max` -- the optimal N-level quantizer (Lloyd 1957/1982, Max 1960): Lloyd iteration
  on the centroid and midpoint conditions with closed-form cell moments, finished by Newton's
  method on the same fixed point, to a fixed-point residual of 1e-12;
* :func:`optimal_compander` -- the compander with compressor c(x) ~ integral f^(1/3) and its
  support region x_max chosen for the highest exact SQNR;
* :func:`spline_compander` -- the compander of Velimirovic, Peric, Stankovic & Nikolic (2012): the
  optimal compressor approximated by first- or second-degree splines on segments, with the
  segment threshold(s) searched numerically for the highest exact SQNR;
* :func:`mu_law`, :func:`a_law` -- G.711 companders (mu = 255, A = 87.6) with optimised loading;
* :func:`panter_dite_sqnr_db` -- the high-resolution asymptote 10 log10(12 N^2 / (int f^(1/3))^3).

Every formula (distortion, compressors, spline fit, Lloyd map) comes from
:mod:`quant_envs.compander`; this module only searches and reports.

Command line (prints the table, writes a CSV per source and the SQNR-versus-variance figure)::

    python -m baselines.compander --source laplacian --levels 8 16 32 64 128
    python -m baselines.compander --source both --out results/compander
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

from quant_envs.atomic_io import atomic_write_csv
from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.compander.compressor import (
    ALawCompressor,
    Compressor,
    MuLawCompressor,
    OptimalCompressor,
    compander_distortion,
    optimal_support,
    panter_dite_distortion,
)
from quant_envs.compander.lloyd import solve_lloyd_max
from quant_envs.compander.objective import evaluate_spline
from quant_envs.compander.quantizer import (
    VARIANCE_DB_LIMIT,
    Distortion,
    distortion,
    output_entropy,
    sqnr_db,
    sqnr_vs_variance,
)
from quant_envs.compander.sources import Source, available_sources, get_source
from quant_envs.compander.spline import FITS, equal_segment_thresholds, fit_spline_compressor

__all__ = [
    "QuantizerResult",
    "a_law",
    "comparison_table",
    "lloyd_max",
    "main",
    "mu_law",
    "optimal_compander",
    "panter_dite_sqnr_db",
    "spline_compander",
]


@dataclass(frozen=True)
class QuantizerResult:
    """One designed N-level quantizer and how it was found (in the spirit of OptimizeResult).

    ``thresholds`` are the N-1 finite decision thresholds (ascending) and ``levels`` the N output
    levels, for the unit-variance source; ``distortion`` is the exact mean squared error,
    ``granular_distortion`` + ``overload_distortion`` its split at ``support`` (x_max; ``None``
    when the quantizer has no support region, as for Lloyd-Max). ``iterations`` counts the
    solver's outer iterations and ``evaluations`` the exact-distortion (or Lloyd-map)
    evaluations. ``params`` holds what is specific to the method.
    """

    method: str
    source: str
    n_levels: int
    thresholds: np.ndarray
    levels: np.ndarray
    distortion: float
    granular_distortion: float
    overload_distortion: float
    sqnr_db: float
    entropy_bits: float
    support: float | None
    iterations: int
    evaluations: int
    converged: bool
    wall_time_s: float
    params: dict[str, Any] = field(default_factory=dict)

    def sqnr_vs_variance(self, variance_db: np.ndarray | Sequence[float]) -> np.ndarray:
        """SQNR in dB of this (unit-variance) design when the input variance is 10^(v/10)."""
        return sqnr_vs_variance(self.source, self.thresholds, self.levels, variance_db)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["thresholds"] = self.thresholds.tolist()
        d["levels"] = self.levels.tolist()
        return d


def _source_name(src: Source) -> str:
    return type(src).name


def _result(
    method: str,
    src: Source,
    n: int,
    thresholds: np.ndarray,
    levels: np.ndarray,
    dist: Distortion,
    support: float | None,
    *,
    iterations: int,
    evaluations: int,
    converged: bool,
    started: float,
    params: dict[str, Any],
) -> QuantizerResult:
    return QuantizerResult(
        method=method,
        source=_source_name(src),
        n_levels=n,
        thresholds=np.asarray(thresholds, dtype=float),
        levels=np.asarray(levels, dtype=float),
        distortion=dist.total,
        granular_distortion=dist.granular,
        overload_distortion=dist.overload,
        sqnr_db=sqnr_db(dist.total),
        entropy_bits=output_entropy(src, thresholds),
        support=support,
        iterations=iterations,
        evaluations=evaluations,
        converged=converged,
        wall_time_s=time.perf_counter() - started,
        params=params,
    )


# ---- Lloyd-Max ----------------------------------------------------------------------------------


def lloyd_max(
    source: str | Source,
    levels: int,
    *,
    tol: float = 1e-12,
    max_iter: int = 200_000,
    method: str = "newton",
) -> QuantizerResult:
    """The Lloyd-Max (minimum mean squared error) quantizer with ``levels`` output levels.

    Starts from the high-resolution optimal thresholds (quantiles of f^(1/3)), iterates the Lloyd
    map t <- midpoints(centroids(t)) and, with ``method="newton"`` (default), switches to Newton's
    method on the same fixed point after three Lloyd steps; ``method="lloyd"`` is plain Lloyd
    iteration. Stops when the fixed-point residual max|T(t) - t| <= ``tol`` (in units of the
    source's standard deviation). ``params`` reports ``residual``, ``lloyd_iterations`` and
    ``newton_iterations``.
    """
    started = time.perf_counter()
    src = get_source(source)
    n = check_int("levels", levels, min_value=2)
    sol = solve_lloyd_max(src, n, tol=tol, max_iter=max_iter, method=method)
    dist = distortion(src, sol.thresholds, sol.levels)
    return _result(
        "lloyd_max",
        src,
        n,
        sol.thresholds,
        sol.levels,
        dist,
        None,
        iterations=sol.lloyd_iterations + sol.newton_iterations,
        evaluations=sol.map_evaluations,
        converged=sol.converged,
        started=started,
        params={
            "residual": sol.residual,
            "tol": tol,
            "method": method,
            "lloyd_iterations": sol.lloyd_iterations,
            "newton_iterations": sol.newton_iterations,
        },
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
    if support is None:
        search = optimal_support(src, make, n)
        x_max, evals, dist = search.x_max, search.evaluations, search.distortion
    else:
        x_max = check_float("support", support, min_value=0.0, min_inclusive=False)
        evals, dist = 1, compander_distortion(src, make(x_max), n)
    t, y = make(x_max).quantizer(n)
    params = {**params, "support_optimized": support is None}
    return _result(method, src, n, t, y, dist, x_max, iterations=1, evaluations=evals, converged=True, started=started, params=params)


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


# ---- the spline compander -----------------------------------------------------------------------


def spline_compander(
    source: str | Source,
    levels: int,
    *,
    degree: int = 2,
    segments: int = 2,
    fit: str = "interpolating",
    support: float | None = None,
    segment_thresholds: Sequence[float] | np.ndarray | None = None,
    optimize_thresholds: bool = True,
    grid: int = 400,
    seed: int = 0,
) -> QuantizerResult:
    """Compander on a spline approximation of the optimal compressor (Velimirovic et al. 2012).

    The positive support [0, x_max] is cut into ``segments`` segments by segment thresholds; on
    each, the optimal compressor is replaced by a polynomial of degree ``degree`` (1 or 2) fitted
    as described in :mod:`quant_envs.compander.spline` (``fit``). x_max is the optimal
    compander's optimised support region unless ``support`` fixes it (the paper keeps the optimal
    compander's support and optimises the segment threshold).

    With ``optimize_thresholds`` (default) the segment thresholds maximise the exact SQNR. The
    SQNR is a rippled function of a threshold (each quantizer threshold crossing a knot makes a
    kink), so a single threshold (``segments=2``, the paper's case) is searched on a uniform grid
    of ``grid`` points over (0, x_max) and the best grid cells are refined with bounded Brent;
    several thresholds are parametrised by softmax gap fractions and searched by Nelder-Mead from
    the best of equal segments and ``grid`` random (``seed``) Dirichlet starts. The starting design
    -- ``segment_thresholds`` if given, else equal-width segments (the *unoptimised* spline) -- is
    always a candidate, so the optimised spline is never worse than it.
    ``params["unoptimized_sqnr_db"]`` reports the starting design's SQNR.
    """
    started = time.perf_counter()
    src = get_source(source)
    n = check_int("levels", levels, min_value=2)
    degree = check_int("degree", degree, min_value=1, max_value=2)
    n_seg = check_int("segments", segments, min_value=1, max_value=64)
    check_choice("fit", fit, FITS)
    grid = check_int("grid", grid, min_value=3)
    optimize_thresholds = check_choice("optimize_thresholds", optimize_thresholds, (True, False))
    seed = check_int("seed", seed, min_value=0)
    given = None
    if segment_thresholds is not None:  # type and shape first, the range once x_max is known
        try:
            given = np.asarray(segment_thresholds, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(
                f"segment_thresholds={segment_thresholds!r} is not allowed; expected a sequence of segments - 1 = {n_seg - 1} numbers"
            ) from None
        if given.ndim > 1 or given.size != n_seg - 1:
            raise ValueError(
                f"segment_thresholds has shape {given.shape} ({given.size} entries), which is not allowed; "
                f"expected segments - 1 = {n_seg - 1} numbers"
            )
        if not np.all(np.isfinite(given)):
            raise ValueError(f"segment_thresholds={given.tolist()!r} is not allowed; expected finite numbers in (0, x_max)")
    if support is None:
        x_max = optimal_support(src, lambda x: OptimalCompressor(source=src, x_max=x), n).x_max
    else:
        x_max = check_float("support", support, min_value=0.0, min_inclusive=False)
    target = OptimalCompressor(source=src, x_max=x_max)
    if given is None:
        start = equal_segment_thresholds(x_max, n_seg)
    else:
        start = np.sort(given.reshape(-1))
        if not np.all(np.isfinite(start)) or np.any(start <= 0) or np.any(start >= x_max) or np.any(np.diff(start) <= 0):
            raise ValueError(
                f"segment_thresholds={start.tolist()!r} is not allowed; expected distinct values strictly inside (0, x_max={x_max:.6g})"
            )
    evals = 0

    def dist_at(t: np.ndarray) -> float:
        nonlocal evals
        evals += 1
        # The cliff rule: a non-increasing spline is infeasible and scores below any design.
        return evaluate_spline(src, target, t, n, degree=degree, fit=fit, penalty="cliff").distortion

    best_t, best_d = start, dist_at(start)
    unoptimized = best_d
    iterations = 0
    if optimize_thresholds and n_seg == 2:
        u = np.linspace(0.0, 1.0, grid + 2)[1:-1]
        values = np.array([dist_at(np.array([x_max * v])) for v in u])
        for k in np.argsort(values)[:3]:  # refine the three best grid cells
            lo = u[k - 1] if k > 0 else 0.5 * u[0]
            hi = u[k + 1] if k < u.size - 1 else 0.5 * (1.0 + u[-1])
            res = optimize.minimize_scalar(
                lambda v: dist_at(np.array([x_max * v])), bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}
            )
            iterations += 1
            cand = [(float(res.fun), np.array([x_max * float(res.x)])), (float(values[k]), np.array([x_max * u[k]]))]
            for d, t in cand:
                if d < best_d:
                    best_t, best_d = t, d
    elif optimize_thresholds and n_seg > 2:
        rng = np.random.default_rng(seed)

        def to_thresholds(z: np.ndarray) -> np.ndarray:
            g = np.exp(np.concatenate(([0.0], z)) - np.max(np.concatenate(([0.0], z))))
            return x_max * np.cumsum(g / g.sum())[:-1]

        def from_thresholds(t: np.ndarray) -> np.ndarray:
            gaps = np.diff(np.concatenate(([0.0], t, [x_max])))
            return np.log(gaps[1:] / gaps[0])

        starts = [from_thresholds(start)] + [np.log(g[1:] / g[0]) for g in rng.dirichlet(np.ones(n_seg), size=grid)]
        scored = sorted(((dist_at(to_thresholds(z)), i) for i, z in enumerate(starts)), key=lambda p: p[0])
        for _, i in scored[:3]:
            res = optimize.minimize(
                lambda z: dist_at(to_thresholds(z)), starts[i], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-15, "maxiter": 4000}
            )
            iterations += int(res.nit)
            if res.fun < best_d:
                best_t, best_d = to_thresholds(res.x), float(res.fun)
    spline = fit_spline_compressor(target, best_t, degree=degree, fit=fit)
    t, y = spline.quantizer(n)
    dist = distortion(src, t, y, support=x_max)
    return _result(
        f"spline_compander_deg{degree}",
        src,
        n,
        t,
        y,
        dist,
        x_max,
        iterations=iterations,
        evaluations=evals,
        converged=True,
        started=started,
        params={
            "degree": degree,
            "segments": n_seg,
            "fit": fit,
            "segment_thresholds": spline.segment_thresholds.tolist(),
            "segment_thresholds_over_support": (spline.segment_thresholds / x_max).tolist(),
            "unoptimized_segment_thresholds": start.tolist(),
            "unoptimized_sqnr_db": sqnr_db(unoptimized),
            "spline_knot_values": spline.values.tolist(),
            "spline_curvature": spline.curvature.tolist(),
        },
    )


# ---- table, figure, command line ----------------------------------------------------------------

COLUMNS = (
    ("N", "N"),
    ("lloyd_max_db", "Lloyd-Max [dB]"),
    ("optimal_compander_db", "optimal compander [dB]"),
    ("optimal_compander_xmax", "x_max [sigma]"),
    ("spline2_db", "spline deg 2 [dB]"),
    ("spline2_threshold", "t* [sigma]"),
    ("spline2_unoptimized_db", "deg 2, t = x_max/2 [dB]"),
    ("spline1_db", "spline deg 1 [dB]"),
    ("mu_law_db", "mu-law 255 [dB]"),
    ("a_law_db", "A-law 87.6 [dB]"),
    ("panter_dite_db", "Panter-Dite [dB]"),
)


def comparison_table(
    source: str | Source, levels: Sequence[int], *, segments: int = 2
) -> tuple[list[dict[str, float]], dict[int, dict[str, QuantizerResult]]]:
    """Rows of the comparison table (SQNR in dB per method and N) and the designs behind them."""
    src = get_source(source)
    rows: list[dict[str, float]] = []
    designs: dict[int, dict[str, QuantizerResult]] = {}
    for n in levels:
        n = check_int("levels", n, min_value=2)
        lm = lloyd_max(src, n)
        oc = optimal_compander(src, n)
        s2 = spline_compander(src, n, degree=2, segments=segments, support=oc.support)
        s1 = spline_compander(src, n, degree=1, segments=segments, support=oc.support)
        mu = mu_law(src, n)
        al = a_law(src, n)
        designs[n] = {"Lloyd-Max": lm, "optimal compander": oc, "spline deg 2": s2, "spline deg 1": s1, "mu-law": mu, "A-law": al}
        rows.append(
            {
                "N": n,
                "lloyd_max_db": lm.sqnr_db,
                "optimal_compander_db": oc.sqnr_db,
                "optimal_compander_xmax": float(oc.support),
                "spline2_db": s2.sqnr_db,
                "spline2_threshold": s2.params["segment_thresholds"][0] if segments == 2 else float("nan"),
                "spline2_unoptimized_db": s2.params["unoptimized_sqnr_db"],
                "spline1_db": s1.sqnr_db,
                "mu_law_db": mu.sqnr_db,
                "a_law_db": al.sqnr_db,
                "panter_dite_db": panter_dite_sqnr_db(src, n),
            }
        )
    return rows, designs


def format_table(rows: list[dict[str, float]]) -> str:
    """Markdown table, SQNR in dB with 3 decimals, thresholds in units of sigma."""
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---:" for _ in COLUMNS) + "|"
    lines = [head, rule]
    for r in rows:
        cells = [str(int(r["N"]))] + [f"{r[key]:.3f}" for key, _ in COLUMNS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _csv_rows(rows: list[dict[str, float]]) -> list[dict[str, object]]:
    """Rows keyed by column title (the CSV header): N as an integer, every value to 6 decimals."""
    return [{COLUMNS[0][1]: int(r["N"]), **{title: f"{r[key]:.6f}" for key, title in COLUMNS[1:]}} for r in rows]


def plot_dynamic_range(
    curves: dict[str, dict[str, QuantizerResult]], variance_db: np.ndarray, path: Path, levels: int
) -> Path:
    """SQNR against input variance (dB relative to the design variance) per source and method."""
    from quant_envs.rendering import new_figure, save_figure

    fig = new_figure(6.0 * len(curves), 4.8, dpi=100)
    axes = fig.subplots(1, len(curves), squeeze=False)
    for ax, (name, designs) in zip(axes[0], curves.items(), strict=True):
        for label, res in designs.items():
            ax.plot(variance_db, res.sqnr_vs_variance(variance_db), label=label)
        ax.set_title(f"{name} source, N = {levels} (designed for unit variance)")
        ax.set_xlabel("input variance relative to design, 10 log10(sigma^2) [dB]")
        ax.set_ylabel("SQNR [dB]")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0.0, 0.07, 1.0, 1.0))
    save_figure(fig, path)
    return path


#: Largest --segments: the solver's own limit (beyond it the spline equals the optimal compander
#: to 1e-5 dB while the Nelder-Mead search over L - 1 thresholds only grows).
MAX_CLI_SEGMENTS = 64
#: Largest --levels / --figure-levels (exact distortion is O(N); 2^16 levels is 96 dB of SQNR).
MAX_CLI_LEVELS = 2**16


def writable_directory_problem(flag: str, path: str) -> str | None:
    """Why ``path`` cannot be the output directory (None if it can): checked before any work.

    ``quant_envs.atomic_io.check_writable_dir`` (the house's one check: creates the directory, writes and
    removes a probe file) as a message instead of an exception, for the CLIs' one-line errors.
    """
    from quant_envs.atomic_io import check_writable_dir

    try:
        check_writable_dir(path, flag)
    except ValueError as exc:
        return str(exc)
    return None


def _check_arguments(args: argparse.Namespace) -> str | None:
    """The first bad command-line value as one line naming the flag, or None."""
    bad = [n for n in args.levels if not 2 <= n <= MAX_CLI_LEVELS]
    if bad:
        return f"--levels {bad[0]} is not allowed; expected every N in [2, {MAX_CLI_LEVELS}]"
    if args.figure_levels is not None and not 2 <= args.figure_levels <= MAX_CLI_LEVELS:
        return f"--figure-levels {args.figure_levels} is not allowed; expected an integer in [2, {MAX_CLI_LEVELS}]"
    if not 1 <= args.segments <= MAX_CLI_SEGMENTS:
        return f"--segments {args.segments} is not allowed; expected an integer in [1, {MAX_CLI_SEGMENTS}]"
    if not all(np.isfinite(v) and abs(v) <= VARIANCE_DB_LIMIT for v in args.variance_db):
        return (f"--variance-db {args.variance_db} is not allowed; expected finite values in "
                f"[-{VARIANCE_DB_LIMIT:g}, {VARIANCE_DB_LIMIT:g}] dB")
    return writable_directory_problem("--out", args.out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m baselines.compander",
        description="SQNR of Lloyd-Max, optimal, spline, mu-law and A-law companders per number of levels.",
    )
    parser.add_argument("--source", default="both", choices=[*available_sources(), "both"])
    parser.add_argument("--levels", type=int, nargs="+", default=[8, 16, 32, 64, 128], help="numbers of output levels N")
    parser.add_argument("--segments", type=int, default=2, help=f"spline segments on [0, x_max], 1..{MAX_CLI_SEGMENTS} (paper: 2)")
    parser.add_argument("--figure-levels", type=int, default=None, help="N of the SQNR-vs-variance figure (default: middle of --levels)")
    parser.add_argument("--variance-db", type=float, nargs=2, default=[-30.0, 20.0], metavar=("LOW", "HIGH"))
    parser.add_argument("--out", default="results/compander", help="directory for CSV tables and the figure")
    args = parser.parse_args(argv)
    problem = _check_arguments(args)
    if problem is not None:  # one line, exit status 2, before any work
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return 2
    args.out = Path(args.out)
    try:
        return _run(args)
    except OSError as exc:  # e.g. the disk filled up while writing: one line, not a traceback
        print(f"{parser.prog}: error: --out {str(args.out)!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    sources = ["gaussian", "laplacian"] if args.source == "both" else [args.source]
    fig_n = args.figure_levels or sorted(args.levels)[len(args.levels) // 2]
    variance_db = np.linspace(args.variance_db[0], args.variance_db[1], 201)
    curves: dict[str, dict[str, QuantizerResult]] = {}
    for name in sources:
        t0 = time.perf_counter()
        rows, designs = comparison_table(name, args.levels, segments=args.segments)
        print(f"\n### {name} source, unit variance: SQNR [dB] per number of levels N\n")
        print(format_table(rows))
        print(f"\n({time.perf_counter() - t0:.2f} s; t* = optimised segment threshold of the degree-2 spline,"
              " x_max = optimal compander support region, both in units of sigma)")
        atomic_write_csv(args.out / f"table_{name}.csv", _csv_rows(rows), [title for _, title in COLUMNS])
        if fig_n in designs:
            curves[name] = designs[fig_n]
        else:
            _, extra = comparison_table(name, [fig_n], segments=args.segments)
            curves[name] = extra[fig_n]
    fig_path = plot_dynamic_range(curves, variance_db, args.out / f"sqnr_vs_variance_N{fig_n}.png", fig_n)
    print(f"\nwrote {args.out}/table_<source>.csv and {fig_path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
