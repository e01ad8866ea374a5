"""Densities rho(x) >= 0 on a CVT domain: the named test densities and user callables.

Named densities are probability densities on their domain (total mass 1). They are defined on
the unit coordinates ``t`` of the domain's bounding box (``t = (x - lo) / (hi - lo)`` per axis),
so the same name means the same shape on any interval or polygon:

========== ================================================ =====================================
name        1-D, t in [0, 1]                                 2-D, t = (u, v)
========== ================================================ =====================================
uniform     1                                                1
linear      1 + 3 t                                          1 + 1.5 (u + v)
exponential exp(-4 t)                                        exp(-2 (u + v))
gaussian    0.05 + exp(-(t - .25)^2 / (2 .06^2))             0.05 + exp(-|t - (.3, .3)|^2 / (2 .1^2))
            + 0.6 exp(-(t - .7)^2 / (2 .1^2))                + 0.6 exp(-|t - (.7, .65)|^2 / (2 .15^2))
========== ================================================ =====================================

(each then divided by its integral over the domain). ``linear`` and ``exponential`` are
log-concave, so their 1-D CVT is unique (Fleischer 1964, Trushkin 1982); ``gaussian`` (two bumps
on a floor) is not, and its CVT energy has several local minima.

A user callable is used as given (not normalised). It receives an array of points, shape (n,) in
1-D or (n, 2) in 2-D, and must return n finite values >= 0. Wrap it in :class:`Density` to state
its length scale (how far rho varies appreciably), which sets how finely cells are subdivided for
quadrature; the default is the domain's diameter / 16.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from quant_envs.checks import check_choice
from quant_envs.cvt.domain import ConvexPolygon, Domain, Interval
from quant_envs.cvt.quadrature import gauss_legendre01, triangle_rule

DENSITY_NAMES = ("uniform", "linear", "exponential", "gaussian")


class Density:
    """A density rho on points of dimension ``dim``.

    Parameters
    ----------
    fn:
        Vectorised rho: maps (n,) (1-D) or (n, 2) (2-D) points to (n,) values >= 0.
    dim:
        1 or 2.
    name:
        Shown in reprs and tables.
    length_scale:
        Distance over which rho changes appreciably; cells larger than half of it are split
        before quadrature. ``inf`` for polynomials of degree <= 6 (integrated exactly).
    linear_coeffs:
        1-D only: (c0, c1) when rho(x) = c0 + c1 x, so cell integrals have closed forms.
    degree:
        Polynomial degree of rho when it is a polynomial (None otherwise): 2-D cell integrals
        then use the lowest-degree exact quadrature (fewer points, same result to rounding).
    """

    #: (name, domain) of a named density (set by ``_named``), so that it pickles by name
    _named_from: tuple[str, Domain]

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        dim: int,
        name: str = "callable",
        length_scale: float = math.inf,
        linear_coeffs: tuple[float, float] | None = None,
        degree: int | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"density={fn!r} must be callable")
        check_choice("dim", dim, (1, 2))
        if not (isinstance(length_scale, (int, float)) and length_scale > 0):
            raise ValueError(f"length_scale={length_scale!r} is not allowed; expected a number > 0 (or inf)")
        self.fn = fn
        self.dim = dim
        self.name = name
        self.length_scale = float(length_scale)
        self.linear_coeffs = linear_coeffs
        self.degree = degree


    def __reduce_ex__(self, protocol):
        # a named density holds closures; it is rebuilt from its name and domain instead
        named_from = self.__dict__.get("_named_from")
        if named_from is not None:
            return (_named, named_from)
        return super().__reduce_ex__(protocol)
    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(x)

    def __repr__(self) -> str:
        return f"Density({self.name!r}, dim={self.dim})"


def make_density(density: Any, domain: Domain) -> Density:
    """The :class:`Density` for the user's ``density`` argument (a name, a callable or a Density)."""
    if isinstance(density, Density):
        if density.dim != domain.dim:
            raise ValueError(
                f"density={density!r} is {density.dim}-D but the domain is {domain.dim}-D; expected matching dimensions"
            )
        return density
    if isinstance(density, str):
        check_choice("density", density, DENSITY_NAMES)
        return _named(density, domain)
    if callable(density):
        dens = Density(density, domain.dim, name=getattr(density, "__name__", "callable"),
                       length_scale=domain.diameter / 16.0)
        validate_density(dens, domain)
        return dens
    raise TypeError(
        f"density={density!r} must be one of {list(DENSITY_NAMES)} or a callable rho(x), got {type(density).__name__}"
    )


def validate_density(density: Density, domain: Domain) -> None:
    """Call rho on probe points of the domain; raise a clear error if its output is unusable."""
    rng = np.random.default_rng(0)
    if isinstance(domain, Interval):
        x = np.linspace(domain.lo, domain.hi, 33)
    else:
        x = np.concatenate([domain.vertices, domain.sample(rng, 64)])
    try:
        y = np.asarray(density(x), dtype=float)
    except Exception as err:  # the user's function failed: say on what input
        raise TypeError(
            f"density={density.fn!r} failed on an array of points of shape {x.shape}: {err!r}; "
            "expected a vectorised rho(x) returning one value per point"
        ) from err
    if y.shape != (len(x),):
        raise ValueError(
            f"density={density.fn!r} returned shape {y.shape} for points of shape {x.shape}; expected ({len(x)},)"
        )
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        raise ValueError(f"density={density.fn!r} returned negative or non-finite values; expected rho(x) >= 0")
    if not np.any(y > 0):
        raise ValueError(f"density={density.fn!r} is zero on the whole domain; expected positive mass")


def total_mass(density: Density, domain: Domain) -> float:
    """Integral of rho over the domain (composite Gauss-Legendre / Dunavant, finely split)."""
    if isinstance(domain, Interval):
        nodes, weights = gauss_legendre01(12)
        edges = np.linspace(domain.lo, domain.hi, 257)
        x = edges[:-1, None] + np.diff(edges)[:, None] * nodes[None, :]
        vals = density(x.ravel()).reshape(x.shape)
        return float(np.sum(vals * weights * np.diff(edges)[:, None]))
    assert isinstance(domain, ConvexPolygon)
    bary, w = triangle_rule(5)
    tri = domain.triangles()
    pts = np.einsum("qj,tjd->tqd", bary, tri)
    area = 0.5 * np.abs(
        (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1])
        - (tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1])
    )
    vals = density(pts.reshape(-1, 2)).reshape(pts.shape[:2])
    return float(np.sum(vals @ w * area))


def _named(name: str, domain: Domain) -> Density:
    """The named density on ``domain``, remembering how it was made (so it pickles by name)."""
    density = _build_named(name, domain)
    density._named_from = (name, domain)
    return density


def _build_named(name: str, domain: Domain) -> Density:
    if isinstance(domain, Interval):
        lo, length = domain.lo, domain.size

        def unit(x: np.ndarray) -> np.ndarray:
            return (np.asarray(x, dtype=float) - lo) / length

        if name == "uniform":
            c = 1.0 / length
            return Density(lambda x: np.full(np.shape(x), c), 1, name, linear_coeffs=(c, 0.0))
        if name == "linear":
            # rho = (1 + 3 t) / (2.5 L) with t = (x - lo) / L
            c1 = 3.0 / (2.5 * length**2)
            c0 = 1.0 / (2.5 * length) - c1 * lo
            return Density(lambda x: c0 + c1 * np.asarray(x, dtype=float), 1, name, linear_coeffs=(c0, c1))
        if name == "exponential":
            raw = Density(lambda x: np.exp(-4.0 * unit(x)), 1, name, length_scale=0.25 * length)
        else:  # gaussian
            raw = Density(lambda x: _bumps_1d(unit(x)), 1, name, length_scale=0.06 * length)
    else:
        assert isinstance(domain, ConvexPolygon)
        lo, hi = domain.bounds
        side = float(np.min(hi - lo))

        def unit2(x: np.ndarray) -> np.ndarray:
            return (np.asarray(x, dtype=float) - lo) / (hi - lo)

        if name == "uniform":
            c = 1.0 / domain.size
            return Density(lambda x: np.full(np.shape(x)[:-1], c), 2, name, degree=0)
        if name == "linear":
            raw = Density(lambda x: 1.0 + 1.5 * unit2(x).sum(axis=-1), 2, name, degree=1)
        elif name == "exponential":
            raw = Density(lambda x: np.exp(-2.0 * unit2(x).sum(axis=-1)), 2, name, length_scale=0.25 * side)
        else:
            raw = Density(lambda x: _bumps_2d(unit2(x)), 2, name, length_scale=0.1 * side)
    scale = 1.0 / total_mass(raw, domain)
    fn = raw.fn
    return Density(lambda x: scale * fn(x), raw.dim, name, raw.length_scale, degree=raw.degree)


def _bumps_1d(t: np.ndarray) -> np.ndarray:
    return 0.05 + np.exp(-((t - 0.25) ** 2) / (2 * 0.06**2)) + 0.6 * np.exp(-((t - 0.7) ** 2) / (2 * 0.1**2))


def _bumps_2d(t: np.ndarray) -> np.ndarray:
    r1 = np.sum((t - np.array([0.3, 0.3])) ** 2, axis=-1)
    r2 = np.sum((t - np.array([0.7, 0.65])) ** 2, axis=-1)
    return 0.05 + np.exp(-r1 / (2 * 0.1**2)) + 0.6 * np.exp(-r2 / (2 * 0.15**2))

