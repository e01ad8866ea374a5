"""Memoryless sources of zero mean and unit variance, with the integrals quantizer theory needs.

A source is a symmetric probability density ``f`` on the real line (``f(-x) = f(x)``) with unit
variance. Everything a quantizer's exact distortion needs reduces to three *upper-tail moments*

    U_k(x) = integral_x^inf t^k f(t) dt,    k = 0, 1, 2,   x >= 0,

and everything the optimal compander needs reduces to the *cube-root integral*

    R(x) = integral_0^x f(t)^(1/3) dt,      x >= 0,

and its inverse. Gaussian and Laplacian sources implement both in closed form. A new source only
has to give its density (and, if it has bounded support, ``support_max``): the base class then
falls back on ``scipy.integrate.quad`` and ``scipy.optimize.brentq``. Register it by name with
:func:`register_source` so every solver and environment accepts it as ``source="<name>"``.

Cell integrals are taken as differences of *tail* integrals on the side of zero where the cell
lies, so a cell far out in the tail keeps its full relative precision (no ``1 - (1 - p)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import integrate, optimize, special

from quant_envs.checks import check_choice

__all__ = [
    "GaussianSource",
    "LaplacianSource",
    "Source",
    "available_sources",
    "get_source",
    "register_source",
    "unregister_source",
]

ArrayLike = float | np.ndarray


@dataclass(frozen=True)
class Source:
    """A symmetric, zero-mean, unit-variance density; subclasses give closed forms where they exist.

    Subclasses must implement :meth:`pdf`. Overriding :meth:`upper_moments`,
    :meth:`cube_root_integral`, :meth:`cube_root_integral_inv` and :meth:`quantile` with closed
    forms is optional (the defaults integrate numerically) but makes the solvers much faster.
    """

    name: ClassVar[str] = "custom"
    #: Largest |x| with f(x) > 0 (``inf`` for unbounded support).
    support_max: ClassVar[float] = math.inf

    # ---- the density ---------------------------------------------------------------------------
    def pdf(self, x: ArrayLike) -> np.ndarray:
        raise NotImplementedError

    # ---- tail moments (numerical defaults) -----------------------------------------------------
    def upper_moments(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(U_0, U_1, U_2)`` at ``x >= 0`` (``x`` may be ``inf``): integrals of t^k f over [x, inf)."""
        x = np.asarray(x, dtype=float)
        out = np.zeros((3,) + x.shape)
        top = self.support_max
        for idx in np.ndindex(x.shape):
            lo = float(x[idx])
            if lo >= top:
                continue
            for k in range(3):
                out[(k,) + idx] = integrate.quad(
                    lambda t, k=k: t**k * float(self.pdf(t)), lo, top, epsabs=0.0, epsrel=1e-13, limit=200
                )[0]
        return out[0], out[1], out[2]

    # ---- the cube-root integral behind the optimal compressor ----------------------------------
    def cube_root_integral(self, x: ArrayLike) -> np.ndarray:
        """R(x) = integral_0^x f^(1/3) for x >= 0 (``inf`` allowed)."""
        x = np.asarray(x, dtype=float)
        out = np.empty(x.shape)
        for idx in np.ndindex(x.shape):
            hi = min(float(x[idx]), self.support_max)
            out[idx] = integrate.quad(lambda t: float(self.pdf(t)) ** (1.0 / 3.0), 0.0, hi, epsabs=0.0, epsrel=1e-13, limit=200)[0]
        return out

    def cube_root_integral_inv(self, v: ArrayLike) -> np.ndarray:
        """The x >= 0 with R(x) = v, for 0 <= v < R(inf)."""
        v = np.asarray(v, dtype=float)
        out = np.empty(v.shape)
        total = self.cube_root_total()
        for idx in np.ndindex(v.shape):
            target = float(v[idx])
            if target <= 0.0:
                out[idx] = 0.0
                continue
            hi = 1.0
            while float(self.cube_root_integral(hi)) < target and hi < self.support_max:
                hi *= 2.0
            hi = min(hi, self.support_max)
            if target >= total:
                out[idx] = hi
                continue
            out[idx] = optimize.brentq(lambda t, target=target: float(self.cube_root_integral(t)) - target, 0.0, hi, xtol=1e-15)
        return out

    def cube_root_total(self) -> float:
        """R(inf) = integral_0^inf f^(1/3)."""
        return float(self.cube_root_integral(math.inf))

    # ---- distribution function -----------------------------------------------------------------
    def quantile(self, p: ArrayLike) -> np.ndarray:
        """The x with P(X <= x) = p, for 0 < p < 1."""
        p = np.asarray(p, dtype=float)
        out = np.empty(p.shape)
        for idx in np.ndindex(p.shape):
            q = float(p[idx])
            if q == 0.5:
                out[idx] = 0.0
                continue
            tail = min(q, 1.0 - q)  # P(X > |x|) = tail
            hi = 1.0
            while float(self.upper_moments(hi)[0]) > tail and hi < self.support_max:
                hi *= 2.0
            hi = min(hi, self.support_max)
            x = optimize.brentq(lambda t, tail=tail: float(self.upper_moments(t)[0]) - tail, 0.0, hi, xtol=1e-15)
            out[idx] = x if q > 0.5 else -x
        return out

    # ---- derived quantities (not meant to be overridden) ---------------------------------------
    def interval_moments(self, a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Integrals of f, x f and x^2 f over [a, b] (elementwise; a <= b, infinities allowed)."""
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        a, b = np.broadcast_arrays(a, b)
        # Tail integrals at |a|, |b| and 0; a cell on the negative side mirrors to the positive one
        # with sign (-1)^k for the k-th moment.
        ua = self.upper_moments(np.abs(a))
        ub = self.upper_moments(np.abs(b))
        u0 = self.upper_moments(np.zeros(1))
        pos = a >= 0.0  # whole cell at or right of zero
        neg = b <= 0.0  # whole cell at or left of zero
        out = []
        for k in range(3):
            sign = -1.0 if k == 1 else 1.0
            right = ua[k] - ub[k]  # [a, b] with 0 <= a
            left = sign * (ub[k] - ua[k])  # [a, b] with b <= 0: mirror is [-b, -a]
            both = sign * (u0[k][0] - ua[k]) + (u0[k][0] - ub[k])  # a < 0 < b
            out.append(np.where(pos, right, np.where(neg, left, both)))
        return out[0], out[1], out[2]

    def variance(self) -> float:
        """Twice the upper second moment at zero (1 for every registered source)."""
        return 2.0 * float(self.upper_moments(0.0)[2])


@dataclass(frozen=True)
class GaussianSource(Source):
    """Standard normal density f(x) = exp(-x^2 / 2) / sqrt(2 pi)."""

    name: ClassVar[str] = "gaussian"

    def pdf(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)

    def upper_moments(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=float)
        u0 = special.ndtr(-x)  # Q(x), accurate deep in the tail
        u1 = self.pdf(x)
        xs = np.where(np.isinf(x), 0.0, x)  # x phi(x) -> 0 as x -> inf
        u2 = xs * u1 + u0  # integration by parts: x phi(x) + Q(x)
        return u0, u1, u2

    def cube_root_integral(self, x: ArrayLike) -> np.ndarray:
        # f^(1/3) = (2 pi)^(-1/6) exp(-x^2 / 6); its integral from 0 is an error function.
        x = np.asarray(x, dtype=float)
        return self.cube_root_total() * special.erf(x / math.sqrt(6.0))

    def cube_root_integral_inv(self, v: ArrayLike) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        return math.sqrt(6.0) * special.erfinv(v / self.cube_root_total())

    def cube_root_total(self) -> float:
        return (2.0 * math.pi) ** (-1.0 / 6.0) * math.sqrt(6.0 * math.pi) / 2.0

    def quantile(self, p: ArrayLike) -> np.ndarray:
        return special.ndtri(np.asarray(p, dtype=float))


_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class LaplacianSource(Source):
    """Unit-variance Laplacian density f(x) = exp(-sqrt(2) |x|) / sqrt(2)."""

    name: ClassVar[str] = "laplacian"

    def pdf(self, x: ArrayLike) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return np.exp(-_SQRT2 * np.abs(x)) / _SQRT2

    def upper_moments(self, x: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # With lam = sqrt(2): U_0 = e^{-lam x}/2, U_1 = U_0 (x + 1/lam), U_2 = U_0 (x^2 + 2x/lam + 2/lam^2).
        x = np.asarray(x, dtype=float)
        u0 = 0.5 * np.exp(-_SQRT2 * x)
        xs = np.where(np.isinf(x), 0.0, x)
        u1 = u0 * (xs + 1.0 / _SQRT2)
        u2 = u0 * (xs * xs + _SQRT2 * xs + 1.0)
        return u0, u1, u2

    def cube_root_integral(self, x: ArrayLike) -> np.ndarray:
        # f^(1/3) = 2^(-1/6) exp(-sqrt(2) x / 3); R(x) = R(inf) (1 - exp(-sqrt(2) x / 3)).
        x = np.asarray(x, dtype=float)
        return self.cube_root_total() * -np.expm1(-_SQRT2 * x / 3.0)

    def cube_root_integral_inv(self, v: ArrayLike) -> np.ndarray:
        v = np.asarray(v, dtype=float)
        return -3.0 / _SQRT2 * np.log1p(-v / self.cube_root_total())

    def cube_root_total(self) -> float:
        return 2.0 ** (-1.0 / 6.0) * 3.0 / _SQRT2

    def quantile(self, p: ArrayLike) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        tail = np.minimum(p, 1.0 - p)
        x = -np.log(2.0 * tail) / _SQRT2
        return np.where(p >= 0.5, x, -x)


# ---- registry -------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[[], Source]] = {
    GaussianSource.name: GaussianSource,
    LaplacianSource.name: LaplacianSource,
}


def register_source(name: str, factory: Callable[[], Source]) -> None:
    """Make ``source=name`` available to every solver and environment of this problem."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r} is not allowed; expected a non-empty string")
    if name in _REGISTRY:
        raise ValueError(f"name={name!r} is already registered; registered sources: {sorted(_REGISTRY)}")
    _REGISTRY[name] = factory


def unregister_source(name: str) -> None:
    """Remove a source added with :func:`register_source` (the built-in ones stay)."""
    if name in (GaussianSource.name, LaplacianSource.name):
        raise ValueError(f"name={name!r} is built in and cannot be unregistered")
    check_choice("name", name, sorted(_REGISTRY))
    del _REGISTRY[name]


def available_sources() -> list[str]:
    """Names accepted as ``source=``."""
    return sorted(_REGISTRY)


def get_source(source: str | Source) -> Source:
    """The :class:`Source` for a registered name, or ``source`` itself if it already is one."""
    if isinstance(source, Source):
        return source
    check_choice("source", source, available_sources())
    return _REGISTRY[source]()
