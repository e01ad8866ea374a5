"""Spline approximations of the optimal compressor function (Velimirovic, Peric, Stankovic,
Nikolic, Applied Mathematics 3(10A), 2012, DOI 10.4236/am.2012.330201; siblings arXiv:1304.0263,
quadratic splines, and arXiv:1301.5434, first-degree splines).

The positive half of the support region [0, x_max] is cut by *segment thresholds*
0 < t_1 < ... < t_{L-1} < x_max into L segments. On every segment the optimal compressor
c(x) = x_max R(x) / R(x_max) is replaced by a polynomial of degree 1 or 2; together they form a
continuous spline s with s(0) = 0 and s(x_max) = x_max, extended to negative x as an odd function.
The compander built on s (thresholds and levels from s^-1 of the uniform grid, see
:mod:`.compressor`) is the spline compander, and its exact SQNR is a function of the segment
thresholds that the paper maximises numerically.

Construction, as read from the papers (where they are silent, the choice is marked *choice*):

* knots and values: the spline passes through the optimal compressor at every segment threshold,
  s(t_j) = c(t_j), so each segment receives the share of the N cells that the optimal compander
  gives it (first-degree spline: piecewise-linear interpolation of c, arXiv:1301.5434);
* second degree: on segment [a, b] of width h, s(x) = l(x) + k (x - a)(x - b), with l the chord
  of c, and the one remaining coefficient k chosen by minimising the mean squared error
  integral_a^b (c(x) - s(x))^2 dx, which gives
  k = 30 / h^5 * integral_a^b (c(x) - l(x)) (x - a)(x - b) dx  (the paper's "coefficients by
  minimisation of the MSE");
* *choice*: a compressor must be increasing, which the papers take for granted. The MSE is a
  convex quadratic in k, so the best k under s' >= 0 on the segment (|k| <= chord slope / h) is
  the free minimiser clipped to that interval; interpolating fits are therefore always valid;
* *choice*: the MSE is the plain (unweighted) integral over the segment, evaluated with
  Gauss-Legendre quadrature of ``quad_points`` nodes per segment (c is analytic, so 48 nodes give
  machine precision);
* *choice*, ``fit="least_squares"``: instead of interpolating at the knots, all coefficients
  (interior knot values and, for degree 2, the segment curvatures) minimise the MSE over
  [0, x_max] jointly, under continuity and s(0) = 0, s(x_max) = x_max. This gives first-degree
  splines a least-squares meaning too; it is an extension, not the paper's construction.

A fitted spline must be strictly increasing to be a compressor; :attr:`SplineCompressor.is_monotone`
tells, and :meth:`SplineCompressor.quantizer` refuses a non-monotone one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import special

from quant_envs.checks import check_choice, check_int
from quant_envs.compander.compressor import Compressor

__all__ = ["SplineCompressor", "fit_spline_compressor", "equal_segment_thresholds"]

FITS = ("interpolating", "least_squares")


@lru_cache(maxsize=8)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = special.roots_legendre(n)
    return x, w


def equal_segment_thresholds(x_max: float, segments: int) -> np.ndarray:
    """Segment thresholds cutting [0, x_max] into ``segments`` segments of equal width."""
    segments = check_int("segments", segments, min_value=1)
    return x_max * np.arange(1, segments) / segments


@dataclass(frozen=True, eq=False, kw_only=True)
class SplineCompressor(Compressor):
    """Continuous piecewise polynomial compressor on [0, x_max], odd extension to [-x_max, 0].

    On segment j, [knots[j], knots[j+1]] of width h_j, with slope m_j of the chord between
    ``values[j]`` and ``values[j+1]``:  s(x) = values[j] + m_j z + curvature[j] z (z - h_j),
    z = x - knots[j]. ``curvature`` is zero for first-degree splines.
    """

    knots: np.ndarray
    values: np.ndarray
    curvature: np.ndarray
    degree: int = 2
    _slopes: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        knots = np.asarray(self.knots, dtype=float)
        values = np.asarray(self.values, dtype=float)
        curv = np.asarray(self.curvature, dtype=float)
        if knots.ndim != 1 or knots.size < 2 or values.shape != knots.shape or curv.size != knots.size - 1:
            raise ValueError("knots and values need L+1 entries and curvature L entries")
        if np.any(np.diff(knots) <= 0):
            raise ValueError(f"knots={knots.tolist()!r} must be strictly increasing")
        object.__setattr__(self, "knots", knots)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "curvature", curv)
        object.__setattr__(self, "_slopes", np.diff(values) / np.diff(knots))

    @property
    def segment_thresholds(self) -> np.ndarray:
        """The interior knots t_1 < ... < t_{L-1}."""
        return self.knots[1:-1].copy()

    @property
    def is_monotone(self) -> bool:
        """Whether s is strictly increasing on [0, x_max]: positive chord slopes and s' >= 0 at both
        ends of every segment (a quadratic piece with s' = 0 at one end is still strictly increasing
        inside)."""
        h = np.diff(self.knots)
        return bool(np.all(self._slopes > 0.0) and np.all(self._slopes - np.abs(self.curvature) * h >= -1e-12 * self._slopes))

    def _segment(self, x: np.ndarray, breakpoints: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(breakpoints, x, side="right") - 1, 0, self.knots.size - 2)

    def forward_positive(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        j = self._segment(x, self.knots)
        z = x - self.knots[j]
        h = self.knots[j + 1] - self.knots[j]
        return self.values[j] + self._slopes[j] * z + self.curvature[j] * z * (z - h)

    def inverse_positive(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        j = self._segment(v, self.values)
        h = self.knots[j + 1] - self.knots[j]
        k = self.curvature[j]
        b = self._slopes[j] - k * h  # s'(knots[j]) > 0 for a monotone spline
        c = v - self.values[j]
        # Root of k z^2 + b z - c = 0 in the cancellation-free form (also right when k -> 0).
        disc = np.sqrt(np.maximum(b * b + 4.0 * k * c, 0.0))
        return self.knots[j] + 2.0 * c / (b + disc)

    def quantizer(self, levels: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.is_monotone:
            raise ValueError(
                "the fitted spline is not strictly increasing, so it is no compressor; "
                f"segment thresholds {self.segment_thresholds.tolist()!r} are not allowed for this fit"
            )
        return super().quantizer(levels)


def fit_spline_compressor(
    target: Compressor,
    segment_thresholds: np.ndarray | list[float],
    *,
    degree: int = 2,
    fit: str = "interpolating",
    quad_points: int = 48,
) -> SplineCompressor:
    """Spline approximation of ``target`` (normally the optimal compressor) on [0, x_max].

    ``segment_thresholds`` are the interior knots t_1 < ... < t_{L-1} inside (0, x_max); an empty
    list gives a single segment. See the module docstring for ``fit``.
    """
    degree = check_int("degree", degree, min_value=1, max_value=2)
    check_choice("fit", fit, FITS)
    quad_points = check_int("quad_points", quad_points, min_value=4, max_value=512)
    x_max = target.x_max
    try:
        t = np.asarray(segment_thresholds, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"segment_thresholds={segment_thresholds!r} must be a sequence of numbers") from None
    knots = np.concatenate(([0.0], t, [x_max]))
    if not np.all(np.isfinite(t)) or np.any(np.diff(knots) <= 0):
        raise ValueError(
            f"segment_thresholds={t.tolist()!r} is not allowed; expected strictly increasing values "
            f"strictly inside (0, x_max={x_max!r})"
        )
    nodes, weights = _gauss_legendre(quad_points)
    a, b = knots[:-1], knots[1:]
    h = b - a
    # Quadrature points per segment: x[j, q], weights w[j, q].
    x = a[:, None] + 0.5 * h[:, None] * (nodes[None, :] + 1.0)
    w = 0.5 * h[:, None] * weights[None, :]
    c = target.forward_positive(x)
    bubble = (x - a[:, None]) * (x - b[:, None])  # (x - a)(x - b) <= 0 on the segment

    if fit == "interpolating":
        values = target.forward_positive(knots)
        values[0], values[-1] = 0.0, x_max
        curvature = np.zeros(knots.size - 1)
        if degree == 2:
            chord = values[:-1, None] + (values[1:] - values[:-1])[:, None] / h[:, None] * (x - a[:, None])
            # k = <c - l, q> / <q, q>, with <q, q> = h^5 / 30 in closed form.
            curvature = np.sum(w * (c - chord) * bubble, axis=1) * 30.0 / h**5
            # The MSE is a convex quadratic in k, so its minimiser under s' >= 0 on the segment
            # (|k| <= chord slope / h) is the free minimiser clipped to that interval.
            limit = np.diff(values) / h**2
            curvature = np.clip(curvature, -limit, limit)
        return SplineCompressor(x_max=x_max, knots=knots, values=values, curvature=curvature, degree=degree)

    # Least squares over all free coefficients: interior knot values (hat functions) and, for
    # degree 2, one curvature per segment (bubble functions). The fixed part is x_max * hat_L.
    n_seg = knots.size - 1
    n_val = n_seg - 1
    n_coef = n_val + (n_seg if degree == 2 else 0)
    lam = (x - a[:, None]) / h[:, None]  # local coordinate in [0, 1]
    basis = np.zeros((n_coef, n_seg, quad_points))
    for j in range(n_val):  # hat at knot j+1: rising on segment j, falling on segment j+1
        basis[j, j] = lam[j]
        basis[j, j + 1] = 1.0 - lam[j + 1]
    if degree == 2:
        for j in range(n_seg):
            basis[n_val + j, j] = bubble[j]
    fixed = np.zeros((n_seg, quad_points))
    fixed[-1] = x_max * lam[-1]
    gram = np.einsum("isq,jsq,sq->ij", basis, basis, w)
    rhs = np.einsum("isq,sq,sq->i", basis, c - fixed, w)
    coef = np.linalg.solve(gram, rhs) if n_coef else np.zeros(0)
    values = np.concatenate(([0.0], coef[:n_val], [x_max]))
    curvature = coef[n_val:] if degree == 2 else np.zeros(n_seg)
    return SplineCompressor(x_max=x_max, knots=knots, values=values, curvature=np.asarray(curvature), degree=degree)
