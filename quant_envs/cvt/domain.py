"""Domains of a CVT problem: an interval in 1-D, a convex polygon in 2-D.

Both know their size (length or area), their bounding box, how to draw uniform random points and
how to bring a point back inside (the environments clip moved generators to the domain).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from quant_envs.checks import check_float

#: Names accepted for the 2-D unit square.
UNIT_SQUARE_NAMES = ("unit-square",)
#: Smallest and largest domain extent (hi - lo, or the polygon's bounding-box side): cell
#: energies scale like extent^(d + 2) / k^2 and must stay normal float64 numbers.
MIN_EXTENT, MAX_EXTENT = 1e-100, 1e100
#: Smallest extent relative to the largest coordinate magnitude: float64 positions must resolve
#: about 10^7 distinct cells across the domain.
MIN_RELATIVE_EXTENT = 1e-9


def check_extent(name: str, value: Any, extent: float, magnitude: float) -> None:
    """Reject a domain too small, too large or too thin against its coordinates to compute on."""
    if not (MIN_EXTENT <= extent <= MAX_EXTENT) or extent < MIN_RELATIVE_EXTENT * magnitude:
        raise ValueError(
            f"{name}={value!r} is not allowed: its extent {extent:.3g} must lie in [{MIN_EXTENT:g}, "
            f"{MAX_EXTENT:g}] and be at least {MIN_RELATIVE_EXTENT:g} x the largest coordinate ({magnitude:.3g}), "
            "so that positions and cell energies are representable in float64"
        )


def _coordinate(name: str, value: Any) -> float:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name}={value!r} must be a number, got {type(value).__name__}")
    return check_float(name, value)


@dataclass(frozen=True)
class Interval:
    """The closed interval [lo, hi] (1-D)."""

    lo: float
    hi: float

    dim = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "lo", _coordinate("domain[0]", self.lo))
        object.__setattr__(self, "hi", _coordinate("domain[1]", self.hi))
        if not self.hi > self.lo:
            raise ValueError(f"domain=({self.lo!r}, {self.hi!r}) is not allowed; expected (lo, hi) with lo < hi")
        check_extent("domain", (self.lo, self.hi), self.hi - self.lo, max(abs(self.lo), abs(self.hi)))

    @property
    def size(self) -> float:
        """Length of the interval."""
        return self.hi - self.lo

    @property
    def diameter(self) -> float:
        return self.hi - self.lo

    @property
    def bounds(self) -> np.ndarray:
        """[[lo], [hi]]: lower and upper corner of the bounding box, shape (2, 1)."""
        return np.array([[self.lo], [self.hi]])

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` points drawn uniformly, shape (n,)."""
        return rng.uniform(self.lo, self.hi, size=n)

    def clip(self, z: np.ndarray) -> np.ndarray:
        """The nearest points of the interval."""
        return np.clip(z, self.lo, self.hi)

    def contains(self, z: np.ndarray, tol: float = 0.0) -> np.ndarray:
        return (z >= self.lo - tol) & (z <= self.hi + tol)

    def to_unit(self, z: np.ndarray) -> np.ndarray:
        """Affine map of the bounding box onto [0, 1]."""
        return (np.asarray(z) - self.lo) / self.size

    def __repr__(self) -> str:
        return f"Interval({self.lo!r}, {self.hi!r})"


class ConvexPolygon:
    """A convex polygon given by its vertices (stored counter-clockwise, without repeats).

    Collinear vertices are dropped. A non-convex or degenerate polygon is rejected with a
    ``ValueError``: the Voronoi cells are clipped against the polygon's edge half-planes, which
    is exact only for convex domains.
    """

    dim = 2

    def __init__(self, vertices: Any) -> None:
        if any(isinstance(x, (str, bytes)) for x in np.ravel(np.asarray(vertices, dtype=object))):
            raise TypeError(f"domain={vertices!r} must hold numbers, got a string coordinate")
        try:
            v = np.asarray(vertices, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"domain={vertices!r} must be a sequence of (x, y) vertices") from None
        if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3:
            raise ValueError(
                f"domain with shape {v.shape} is not allowed; expected at least 3 polygon vertices (x, y), "
                "or 'unit-square'"
            )
        if not np.all(np.isfinite(v)):
            raise ValueError("domain vertices must be finite numbers")
        if np.allclose(v[0], v[-1]) and len(v) > 3:  # a closed ring: drop the repeated first vertex
            v = v[:-1]
        area2 = _signed_area2(v)
        if area2 < 0:
            v = v[::-1]
            area2 = -area2
        scale = float(np.max(np.ptp(v, axis=0)))
        check_extent("domain", vertices, scale, float(np.max(np.abs(v))))
        if not area2 > 1e-12 * scale**2:
            raise ValueError("domain polygon has zero area; expected a convex polygon with positive area")
        # Drop repeated and collinear vertices, then demand strict convexity (all left turns).
        keep = []
        n = len(v)
        for i in range(n):
            a, b, c = v[i - 1], v[i], v[(i + 1) % n]
            if _cross(b - a, c - b) > 1e-12 * scale**2:
                keep.append(i)
            elif _cross(b - a, c - b) < -1e-12 * scale**2:
                raise ValueError(
                    f"domain polygon is not convex (reflex turn at vertex {b.tolist()}); expected a convex polygon"
                )
        v = v[keep]
        if len(v) < 3:
            raise ValueError("domain polygon is degenerate; expected a convex polygon with positive area")
        # A self-intersecting ring can make only left turns yet wind twice: total turning must be 2*pi.
        e = np.roll(v, -1, axis=0) - v
        ang = np.arctan2(e[:, 1], e[:, 0])
        turning = np.sum(np.mod(np.diff(np.append(ang, ang[0])), 2 * np.pi))
        if not math.isclose(turning, 2 * np.pi, rel_tol=1e-9):
            raise ValueError("domain polygon winds more than once; expected a simple convex polygon")
        self.vertices = v
        self.vertices.setflags(write=False)
        # Edge i goes from vertex i to vertex i+1; inside means normal . x <= offset.
        e = np.roll(v, -1, axis=0) - v
        normals = np.stack([e[:, 1], -e[:, 0]], axis=1)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        self.normals = normals
        self.offsets = np.einsum("ij,ij->i", normals, v)
        self._area = 0.5 * area2

    @classmethod
    def unit_square(cls) -> ConvexPolygon:
        return cls([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])

    @property
    def size(self) -> float:
        """Area of the polygon."""
        return self._area

    @property
    def diameter(self) -> float:
        d = self.vertices[:, None, :] - self.vertices[None, :, :]
        return float(np.sqrt(np.max(np.sum(d**2, axis=-1))))

    @property
    def bounds(self) -> np.ndarray:
        """[[xmin, ymin], [xmax, ymax]]."""
        return np.stack([self.vertices.min(axis=0), self.vertices.max(axis=0)])

    def is_box(self) -> bool:
        """True when the polygon equals its bounding box (then box bounds are exact constraints)."""
        return len(self.vertices) == 4 and math.isclose(
            self._area, float(np.prod(np.ptp(self.vertices, axis=0))), rel_tol=1e-12
        )

    def triangles(self) -> np.ndarray:
        """A fan triangulation, shape (n - 2, 3, 2)."""
        v = self.vertices
        return np.stack([np.broadcast_to(v[0], v[1:-1].shape), v[1:-1], v[2:]], axis=1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` points drawn uniformly from the polygon, shape (n, 2)."""
        tri = self.triangles()
        a = tri[:, 0]
        area = 0.5 * np.abs(_cross(tri[:, 1] - a, tri[:, 2] - a))
        which = rng.choice(len(tri), size=n, p=area / area.sum())
        r1, r2 = rng.random(n), rng.random(n)
        flip = r1 + r2 > 1.0
        r1, r2 = np.where(flip, 1.0 - r1, r1), np.where(flip, 1.0 - r2, r2)
        t = tri[which]
        return t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0])

    def contains(self, z: np.ndarray, tol: float = 0.0) -> np.ndarray:
        z = np.asarray(z, dtype=float)
        return np.all(z @ self.normals.T <= self.offsets + tol, axis=-1)

    def clip(self, z: np.ndarray) -> np.ndarray:
        """Euclidean projection of each point onto the polygon (points inside are unchanged)."""
        z = np.array(z, dtype=float, copy=True)
        outside = ~self.contains(z)
        if not np.any(outside):
            return z
        p = z[outside]
        v, w = self.vertices, np.roll(self.vertices, -1, axis=0)
        # Nearest point on every edge segment, keep the closest one.
        d = w - v
        t = np.clip(np.einsum("pej,ej->pe", p[:, None, :] - v[None], d) / np.sum(d**2, axis=1), 0.0, 1.0)
        q = v[None] + t[..., None] * d[None]
        best = np.argmin(np.sum((q - p[:, None, :]) ** 2, axis=-1), axis=1)
        z[outside] = q[np.arange(len(p)), best]
        return z

    def to_unit(self, z: np.ndarray) -> np.ndarray:
        """Affine map of the bounding box onto [0, 1]^2 (per axis)."""
        lo, hi = self.bounds
        return (np.asarray(z) - lo) / (hi - lo)

    def __repr__(self) -> str:
        return f"ConvexPolygon({self.vertices.tolist()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConvexPolygon) and np.array_equal(self.vertices, other.vertices)

    def __hash__(self) -> int:
        return hash(self.vertices.tobytes())


Domain = Interval | ConvexPolygon


def make_domain(domain: Any) -> Domain:
    """Turn the user's ``domain`` argument into an :class:`Interval` or :class:`ConvexPolygon`.

    ``(lo, hi)`` is an interval; ``"unit-square"`` or a sequence of at least three (x, y)
    vertices is a convex polygon.
    """
    if isinstance(domain, (Interval, ConvexPolygon)):
        return domain
    if isinstance(domain, str):
        if domain in UNIT_SQUARE_NAMES:
            return ConvexPolygon.unit_square()
        raise ValueError(
            f"domain={domain!r} is not allowed; expected (lo, hi) for an interval, 'unit-square', "
            "or a list of convex-polygon vertices"
        )
    if isinstance(domain, Sequence) or isinstance(domain, np.ndarray):
        arr = np.asarray(domain, dtype=object)
        if arr.ndim == 1 and len(arr) == 2 and all(np.ndim(x) == 0 for x in domain):
            return Interval(domain[0], domain[1])
        return ConvexPolygon(domain)
    raise TypeError(
        f"domain={domain!r} must be (lo, hi), 'unit-square' or a list of (x, y) vertices, "
        f"got {type(domain).__name__}"
    )


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _signed_area2(v: np.ndarray) -> float:
    w = np.roll(v, -1, axis=0)
    return float(np.sum(v[:, 0] * w[:, 1] - w[:, 0] * v[:, 1]))
