"""Compressor functions and the companding quantizers they define.

A compander quantizes x by compressing it with an odd, increasing c: [-x_max, x_max] ->
[-x_max, x_max], quantizing c(x) uniformly with N cells of width 2 x_max / N, and expanding back
with c^-1. Its decision thresholds and output levels are therefore

    t_i = c^-1(-x_max + 2 i x_max / N),        i = 1, ..., N-1,
    y_i = c^-1(-x_max + (2 i - 1) x_max / N),  i = 1, ..., N,

(the output level is the expanded midpoint of its compressed cell, the classical compander; the
last cell also collects the overload |x| > x_max). The exact distortion of that quantizer comes
from :func:`quant_envs.compander.quantizer.distortion` with ``support=x_max``.

Compressors here:

* :class:`OptimalCompressor`: c(x) = x_max R(x) / R(x_max), R(x) = integral_0^x f^(1/3), the
  compressor that minimises Bennett's high-resolution granular distortion (Panter & Dite 1951);
* :class:`MuLawCompressor`: c(x) = x_max ln(1 + mu |x| / x_max) / ln(1 + mu) (G.711: mu = 255);
* :class:`ALawCompressor`: linear below x_max / A, logarithmic above (G.711: A = 87.6);
* the spline approximation of the optimal compressor lives in :mod:`.spline`.

A compander's quality depends strongly on its *loading* x_max; :func:`optimal_support` finds the
x_max that maximises the exact SQNR, which is how the optimal compander and the mu-/A-law
companders "with optimised loading" are defined.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from quant_envs.checks import check_float, check_int
from quant_envs.compander.quantizer import Distortion, distortion
from quant_envs.compander.sources import Source, get_source

__all__ = [
    "ALawCompressor",
    "Compressor",
    "MuLawCompressor",
    "OptimalCompressor",
    "SupportSearch",
    "compander_distortion",
    "compander_mse",
    "optimal_support",
    "panter_dite_distortion",
]


@dataclass(frozen=True, eq=False, kw_only=True)
class Compressor(ABC):
    """An odd increasing map of [-x_max, x_max] onto itself; subclasses define the half x >= 0."""

    x_max: float

    def __post_init__(self) -> None:
        check_float("x_max", self.x_max, min_value=0.0, min_inclusive=False)

    @abstractmethod
    def forward_positive(self, x: np.ndarray) -> np.ndarray:
        """c(x) for 0 <= x <= x_max."""

    @abstractmethod
    def inverse_positive(self, v: np.ndarray) -> np.ndarray:
        """c^-1(v) for 0 <= v <= x_max."""

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        """c(x), odd, saturating at +-x_max outside the support region."""
        x = np.asarray(x, dtype=float)
        a = np.minimum(np.abs(x), self.x_max)
        return np.sign(x) * self.forward_positive(a)

    def inverse(self, v: np.ndarray | float) -> np.ndarray:
        """c^-1(v) for |v| <= x_max."""
        v = np.asarray(v, dtype=float)
        a = np.minimum(np.abs(v), self.x_max)
        return np.sign(v) * self.inverse_positive(a)

    def quantizer(self, levels: int) -> tuple[np.ndarray, np.ndarray]:
        """``(thresholds, levels)`` of the N-level compander (see the module docstring)."""
        n = check_int("levels", levels, min_value=2)
        grid = -self.x_max + self.x_max * np.arange(1, 2 * n) / n  # 2N-1 points, step x_max/N
        x = self.inverse(grid)
        # Odd map: enforce exact symmetry against rounding in the inverse.
        x = 0.5 * (x - x[::-1])
        return x[1::2], x[0::2]


@dataclass(frozen=True, eq=False, kw_only=True)
class OptimalCompressor(Compressor):
    """c(x) = x_max R(x) / R(x_max) with R(x) = integral_0^x f^(1/3): closed forms for both sources."""

    source: Source

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.source, Source):
            raise TypeError(f"source={self.source!r} must be a Source (see get_source)")

    @property
    def _scale(self) -> float:
        return float(self.source.cube_root_integral(self.x_max))

    def forward_positive(self, x: np.ndarray) -> np.ndarray:
        return self.x_max * self.source.cube_root_integral(x) / self._scale

    def inverse_positive(self, v: np.ndarray) -> np.ndarray:
        return self.source.cube_root_integral_inv(np.asarray(v) * self._scale / self.x_max)


@dataclass(frozen=True, eq=False, kw_only=True)
class MuLawCompressor(Compressor):
    """mu-law: c(x) = x_max ln(1 + mu x / x_max) / ln(1 + mu) for x >= 0."""

    mu: float = 255.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("mu", self.mu, min_value=0.0, min_inclusive=False)

    def forward_positive(self, x: np.ndarray) -> np.ndarray:
        return self.x_max * np.log1p(self.mu * np.asarray(x) / self.x_max) / math.log1p(self.mu)

    def inverse_positive(self, v: np.ndarray) -> np.ndarray:
        return self.x_max / self.mu * np.expm1(np.asarray(v) / self.x_max * math.log1p(self.mu))


@dataclass(frozen=True, eq=False, kw_only=True)
class ALawCompressor(Compressor):
    """A-law: c(x) = x_max A x / (x_max (1 + ln A)) for x <= x_max / A, else
    x_max (1 + ln(A x / x_max)) / (1 + ln A)."""

    a: float = 87.6

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("a", self.a, min_value=1.0)

    def forward_positive(self, x: np.ndarray) -> np.ndarray:
        u = np.asarray(x) / self.x_max
        den = 1.0 + math.log(self.a)
        small = self.a * u / den
        large = (1.0 + np.log(np.maximum(self.a * u, 1.0))) / den
        return self.x_max * np.where(u <= 1.0 / self.a, small, large)

    def inverse_positive(self, v: np.ndarray) -> np.ndarray:
        w = np.asarray(v) / self.x_max
        den = 1.0 + math.log(self.a)
        small = w * den / self.a
        large = np.exp(w * den - 1.0) / self.a
        return self.x_max * np.where(w <= 1.0 / den, small, large)


def compander_distortion(source: str | Source, compressor: Compressor, levels: int) -> Distortion:
    """Exact distortion (granular + overload at ``compressor.x_max``) of the N-level compander."""
    t, y = compressor.quantizer(levels)
    return distortion(source, t, y, support=compressor.x_max)


def compander_mse(source: str | Source, compressor: Compressor, levels: int) -> float:
    """Total exact distortion of the N-level compander, without the granular/overload split
    (a third of the work: what searches over compander parameters need)."""
    t, y = compressor.quantizer(levels)
    return distortion(source, t, y).total


def panter_dite_distortion(source: str | Source, levels: int) -> float:
    """Panter-Dite high-resolution distortion of the optimal compander, (integral f^(1/3))^3 / (12 N^2).

    The asymptote every N-level quantizer's distortion approaches as N grows (Panter & Dite 1951);
    4.5 / N^2 for the unit-variance Laplacian and sqrt(3) pi / (2 N^2) for the Gaussian.
    """
    src = get_source(source)
    n = check_int("levels", levels, min_value=1)
    return (2.0 * src.cube_root_total()) ** 3 / (12.0 * n * n)


@dataclass(frozen=True)
class SupportSearch:
    """Outcome of the loading search: the best x_max, its distortion, and how many evaluations."""

    x_max: float
    distortion: Distortion
    evaluations: int


def optimal_support(
    source: str | Source,
    make_compressor: Callable[[float], Compressor],
    levels: int,
    *,
    bounds: tuple[float, float] = (0.05, 200.0),
    grid: int = 97,
    xtol: float = 1e-10,
) -> SupportSearch:
    """The support-region threshold x_max that minimises the compander's exact distortion.

    A log-spaced grid over ``bounds`` brackets the minimum (distortion against loading is
    unimodal in practice, the grid guards against a poor start), then bounded Brent
    (``scipy.optimize.minimize_scalar``) refines it between the best grid point's neighbours.
    """
    src = get_source(source)
    n = check_int("levels", levels, min_value=2)
    lo, hi = (check_float("bounds[0]", bounds[0], min_value=0.0, min_inclusive=False), check_float("bounds[1]", bounds[1]))
    if hi <= lo:
        raise ValueError(f"bounds={bounds!r} is not allowed; expected lower < upper")
    count = 0

    def objective(log_x: float) -> float:
        nonlocal count
        count += 1
        return compander_mse(src, make_compressor(math.exp(log_x)), n)

    logs = np.linspace(math.log(lo), math.log(hi), check_int("grid", grid, min_value=3))
    values = np.array([objective(v) for v in logs])
    k = int(np.argmin(values))
    a, b = logs[max(k - 1, 0)], logs[min(k + 1, logs.size - 1)]
    res = optimize.minimize_scalar(objective, bounds=(a, b), method="bounded", options={"xatol": xtol})
    best_log = float(res.x) if res.fun <= values[k] else float(logs[k])
    x_max = math.exp(best_log)
    return SupportSearch(x_max=x_max, distortion=compander_distortion(src, make_compressor(x_max), n), evaluations=count + 1)
