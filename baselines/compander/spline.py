"""The spline compander of Velimirovic, Peric, Stankovic & Nikolic (2012) and its threshold search.

The optimal compressor is replaced on each segment of [0, x_max] by a polynomial of degree 1 or 2
(fitted as in :mod:`quant_envs.compander.spline`); the segment thresholds are searched for the
highest exact SQNR. The steps of :func:`spline_compander`, each a function here: check the given
segment thresholds, choose the support region, build the starting design, search, report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from baselines.compander.result import QuantizerResult, make_result
from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.compander.compressor import OptimalCompressor, optimal_support
from quant_envs.compander.objective import evaluate_spline
from quant_envs.compander.quantizer import distortion, sqnr_db
from quant_envs.compander.sources import Source, get_source
from quant_envs.compander.spline import FITS, equal_segment_thresholds, fit_spline_compressor

__all__ = ["spline_compander"]

REFINED_CANDIDATES = 3  # grid cells (one threshold) or starts (several) refined by a local search


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
    given = _given_thresholds(segment_thresholds, n_seg)  # before the support search: fail fast
    x_max = _support_region(src, n, support)
    start = _starting_thresholds(given, x_max, n_seg)
    target = OptimalCompressor(source=src, x_max=x_max)
    objective = _SplineDistortion(src, target, n, degree, fit)
    search = _Search(start, objective(start))
    if optimize_thresholds and n_seg == 2:
        _search_one_threshold(search, objective, x_max, grid)
    elif optimize_thresholds and n_seg > 2:
        _search_several_thresholds(search, objective, x_max, n_seg, grid, seed)
    elif optimize_thresholds:
        search.message = "one segment: no segment threshold to search"
    return _spline_result(src, n, target, x_max, degree, n_seg, fit, search, objective.evaluations, started)


def _given_thresholds(segment_thresholds: Sequence[float] | np.ndarray | None, n_seg: int) -> np.ndarray | None:
    """``segment_thresholds`` as an array of segments - 1 finite numbers (the range is checked later)."""
    if segment_thresholds is None:
        return None
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
    return given


def _support_region(src: Source, n: int, support: float | None) -> float:
    """x_max: ``support`` if given, else the optimal compander's loading of best exact SQNR."""
    if support is None:
        return optimal_support(src, lambda x: OptimalCompressor(source=src, x_max=x), n).x_max
    return check_float("support", support, min_value=0.0, min_inclusive=False)


def _starting_thresholds(given: np.ndarray | None, x_max: float, n_seg: int) -> np.ndarray:
    """The given thresholds, sorted and strictly inside (0, x_max), else equal-width segments."""
    if given is None:
        return equal_segment_thresholds(x_max, n_seg)
    start = np.sort(given.reshape(-1))
    if not np.all(np.isfinite(start)) or np.any(start <= 0) or np.any(start >= x_max) or np.any(np.diff(start) <= 0):
        raise ValueError(
            f"segment_thresholds={start.tolist()!r} is not allowed; expected distinct values strictly inside (0, x_max={x_max:.6g})"
        )
    return start


class _SplineDistortion:
    """Exact distortion of the spline compander as a function of its segment thresholds; counts calls."""

    def __init__(self, src: Source, target: OptimalCompressor, n: int, degree: int, fit: str) -> None:
        self.src, self.target, self.n, self.degree, self.fit = src, target, n, degree, fit
        self.evaluations = 0

    def __call__(self, thresholds: np.ndarray) -> float:
        self.evaluations += 1
        # The cliff rule: a non-increasing spline is infeasible and scores below any design.
        return evaluate_spline(
            self.src, self.target, thresholds, self.n, degree=self.degree, fit=self.fit, penalty="cliff"
        ).distortion


@dataclass
class _Search:
    """The best segment thresholds so far; the starting design is the first candidate."""

    start: np.ndarray
    start_distortion: float
    iterations: int = 0
    message: str = "starting segment thresholds kept (optimize_thresholds=False)"

    def __post_init__(self) -> None:
        self.thresholds, self.distortion = self.start, self.start_distortion

    def offer(self, value: float, thresholds: np.ndarray) -> None:
        """Keep ``thresholds`` if strictly better than the best so far (earlier wins ties)."""
        if value < self.distortion:
            self.thresholds, self.distortion = thresholds, value


def _search_one_threshold(search: _Search, objective: _SplineDistortion, x_max: float, grid: int) -> None:
    """One threshold: a uniform grid over (0, x_max), its best cells refined by bounded Brent."""

    def at(v: float) -> float:  # v: the threshold as a fraction of x_max
        return objective(np.array([x_max * v]))

    u = np.linspace(0.0, 1.0, grid + 2)[1:-1]
    values = np.array([at(v) for v in u])
    for k in np.argsort(values)[:REFINED_CANDIDATES]:
        lo = u[k - 1] if k > 0 else 0.5 * u[0]
        hi = u[k + 1] if k < u.size - 1 else 0.5 * (1.0 + u[-1])
        res = optimize.minimize_scalar(at, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
        search.iterations += 1
        search.offer(float(res.fun), np.array([x_max * float(res.x)]))
        search.offer(float(values[k]), np.array([x_max * u[k]]))
    search.message = f"best of a {grid}-point grid, its {REFINED_CANDIDATES} best cells refined by bounded Brent"


def _search_several_thresholds(
    search: _Search, objective: _SplineDistortion, x_max: float, n_seg: int, grid: int, seed: int
) -> None:
    """Several thresholds: Nelder-Mead on softmax gap fractions from the best of many starts.

    The starts are the starting design and ``grid`` Dirichlet-random segmentations (``seed``).
    """

    def to_thresholds(z: np.ndarray) -> np.ndarray:
        g = np.exp(np.concatenate(([0.0], z)) - np.max(np.concatenate(([0.0], z))))
        return x_max * np.cumsum(g / g.sum())[:-1]

    def from_thresholds(t: np.ndarray) -> np.ndarray:
        gaps = np.diff(np.concatenate(([0.0], t, [x_max])))
        return np.log(gaps[1:] / gaps[0])

    rng = np.random.default_rng(seed)
    starts = [from_thresholds(search.start)] + [np.log(g[1:] / g[0]) for g in rng.dirichlet(np.ones(n_seg), size=grid)]
    scored = sorted(((objective(to_thresholds(z)), i) for i, z in enumerate(starts)), key=lambda p: p[0])
    for _, i in scored[:REFINED_CANDIDATES]:
        res = optimize.minimize(
            lambda z: objective(to_thresholds(z)),
            starts[i],
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-15, "maxiter": 4000},
        )
        search.iterations += int(res.nit)
        search.offer(float(res.fun), to_thresholds(res.x))
    search.message = f"best of {grid + 1} starts, the {REFINED_CANDIDATES} best refined by Nelder-Mead"


def _spline_result(
    src: Source,
    n: int,
    target: OptimalCompressor,
    x_max: float,
    degree: int,
    n_seg: int,
    fit: str,
    search: _Search,
    evaluations: int,
    started: float,
) -> QuantizerResult:
    """The spline on the best thresholds found, as a quantizer with its exact distortion."""
    spline = fit_spline_compressor(target, search.thresholds, degree=degree, fit=fit)
    t, y = spline.quantizer(n)
    return make_result(
        f"spline_compander_deg{degree}",
        src,
        n,
        t,
        y,
        distortion(src, t, y, support=x_max),
        x_max,
        iterations=search.iterations,
        evaluations=evaluations,
        started=started,
        params={
            "degree": degree,
            "segments": n_seg,
            "fit": fit,
            "segment_thresholds": spline.segment_thresholds.tolist(),
            "segment_thresholds_over_support": (spline.segment_thresholds / x_max).tolist(),
            "unoptimized_segment_thresholds": search.start.tolist(),
            "unoptimized_sqnr_db": sqnr_db(search.start_distortion),
            "spline_knot_values": spline.values.tolist(),
            "spline_curvature": spline.curvature.tolist(),
        },
        message=search.message,
    )

