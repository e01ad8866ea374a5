"""The CVT problem: k generators, a density on a domain, the energy and its derivatives.

E(z) = sum_i int_{V_i} rho(x) |x - z_i|^2 dx over the Voronoi cells V_i of z (clipped to the
domain). E is C^2 for convex domains and positive continuous rho (Liu et al. 2009); its gradient
is dE/dz_i = 2 m_i (z_i - c_i) with m_i = int_{V_i} rho and c_i the cell's centroid
(Du, Faber & Gunzburger 1999). A centroidal Voronoi tessellation (z_i = c_i for all i) is a
critical point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from quant_envs.checks import check_int
from quant_envs.cvt.cells1d import cells_1d, hessian_1d, integrals_1d
from quant_envs.cvt.cells2d import CellIntegrals2D, Cells2D, cell_integrals, clip_cells, hessian_2d
from quant_envs.cvt.density import Density, make_density
from quant_envs.cvt.domain import ConvexPolygon, Domain, Interval, make_domain


@dataclass(frozen=True)
class CVTEvaluation:
    """Everything one pass over the cells gives: E, dE/dz, cell masses and centroids.

    ``gradient`` and ``centroids`` have the shape of z: (k,) in 1-D, (k, 2) in 2-D. An empty cell
    (a generator outside the domain's reach, or a repeated generator) has mass 0 and its centroid
    is reported at the generator, so its gradient is 0.
    """

    energy: float
    gradient: np.ndarray
    masses: np.ndarray
    centroids: np.ndarray
    second_moments: np.ndarray  # int_{V_i} rho |x - z_i|^2, whose sum is the energy


class CVTProblem:
    """Centroidal Voronoi tessellation of ``k`` generators for a density on a domain.

    Generators ``z`` are arrays of shape (k,) in 1-D and (k, 2) in 2-D, in any order. The problem
    counts its cell passes in ``n_evaluations`` (every call of energy, gradient, evaluate or
    hessian is one, even when the 2-D cells of the previous call are reused), which the solvers
    report as work.

    Parameters
    ----------
    k:
        Number of generators (>= 1).
    density:
        ``"uniform"``, ``"linear"``, ``"exponential"``, ``"gaussian"`` (see
        :mod:`quant_envs.cvt.density`: named densities have total mass 1), a vectorised callable
        rho(x), or a :class:`~quant_envs.cvt.density.Density`.
    domain:
        ``(lo, hi)`` for an interval (1-D); ``"unit-square"`` or a list of (x, y) vertices of a
        convex polygon (2-D).
    """

    def __init__(self, k: int, density: Any = "uniform", domain: Any = (0.0, 1.0)) -> None:
        self.k = check_int("k", k, min_value=1)
        self.domain: Domain = make_domain(domain)
        self.dim: int = self.domain.dim
        self.density: Density = make_density(density, self.domain)
        self.n_evaluations = 0
        self._last_cells: tuple[bytes, Cells2D, CellIntegrals2D] | None = None

    # ---------------------------------------------------------------- construction helpers
    def with_k(self, k: int) -> CVTProblem:
        """The same density and domain with ``k`` generators (used for multigrid levels)."""
        return CVTProblem(k, self.density, self.domain)

    def random_generators(self, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """k generators drawn uniformly from the domain (sorted in 1-D)."""
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        z = self.domain.sample(rng, self.k)
        return np.sort(z) if self.dim == 1 else z

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of a generator array."""
        return (self.k,) if self.dim == 1 else (self.k, 2)

    def check_generators(self, z: Any, name: str = "z") -> np.ndarray:
        """``z`` as a float array of shape :attr:`shape`, or a ValueError that says what is wrong."""
        try:
            arr = np.asarray(z, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be an array of generator coordinates, got {type(z).__name__}") from None
        if self.dim == 1 and arr.shape == (self.k, 1):
            arr = arr[:, 0]
        if arr.shape != self.shape:
            raise ValueError(f"{name} has shape {arr.shape}; expected {self.shape} for k={self.k} in {self.dim}-D")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite coordinates; expected finite numbers")
        return arr

    # ---------------------------------------------------------------- energy and derivatives
    def evaluate(self, z: Any) -> CVTEvaluation:
        """Energy, gradient, masses and centroids from one pass over the cells."""
        z = self.check_generators(z)
        self.n_evaluations += 1
        if self.dim == 1:
            assert isinstance(self.domain, Interval)
            mass, first, second = integrals_1d(z, self.domain, self.density)
        else:
            assert isinstance(self.domain, ConvexPolygon)
            cells, ints = self._cells_2d(z)
            owned = cells.owner >= 0
            mass, first, second = np.zeros(self.k), np.zeros((self.k, 2)), np.zeros(self.k)
            mass[owned] = ints.mass[cells.owner[owned]]
            first[owned] = ints.first[cells.owner[owned]]
            second[owned] = ints.energy[cells.owner[owned]]
        safe = np.where(mass > 0, mass, 1.0)
        offset = first / (safe if self.dim == 1 else safe[:, None])
        offset[mass <= 0] = 0.0
        return CVTEvaluation(
            energy=float(np.sum(second)),
            gradient=-2.0 * first,
            masses=mass,
            centroids=z + offset,
            second_moments=second,
        )

    def energy(self, z: Any) -> float:
        """E(z) = sum_i int_{V_i} rho(x) |x - z_i|^2 dx."""
        return self.evaluate(z).energy

    def gradient(self, z: Any) -> np.ndarray:
        """dE/dz_i = 2 m_i (z_i - c_i), same shape as z."""
        return self.evaluate(z).gradient

    def hessian(self, z: Any) -> sp.csr_array:
        """Sparse Hessian of E: (k, k) in 1-D (tridiagonal), (2k, 2k) in 2-D for z.ravel() order."""
        z = self.check_generators(z)
        self.n_evaluations += 1
        if self.dim == 1:
            assert isinstance(self.domain, Interval)
            mass = integrals_1d(z, self.domain, self.density)[0]
            return hessian_1d(z, mass, self.domain, self.density)
        cells, ints = self._cells_2d(z)
        return hessian_2d(cells, ints, self.density, self.k)

    def _cells_2d(self, z: np.ndarray) -> tuple[Cells2D, CellIntegrals2D]:
        # One-entry cache: a solver asks for the Hessian where it has just evaluated the gradient.
        key = z.tobytes()
        if self._last_cells is None or self._last_cells[0] != key:
            assert isinstance(self.domain, ConvexPolygon)
            cells = clip_cells(z, self.domain)
            self._last_cells = (key, cells, cell_integrals(cells, self.density))
        return self._last_cells[1], self._last_cells[2]

    # ---------------------------------------------------------------- geometry
    def cells(self, z: Any) -> Any:
        """1-D: (lo, hi) arrays of cell ends in input order; 2-D: :class:`Cells2D`."""
        z = self.check_generators(z)
        if self.dim == 1:
            c = cells_1d(z, self.domain)  # type: ignore[arg-type]
            return c.lo, c.hi
        return clip_cells(z, self.domain)  # type: ignore[arg-type]

    def cell_polygons(self, z: Any) -> list[np.ndarray]:
        """2-D: the clipped cell of every generator in global coordinates (empty for repeats)."""
        if self.dim != 2:
            raise ValueError("cell_polygons is defined for 2-D problems; this problem is 1-D")
        cells: Cells2D = self.cells(z)
        return [cells.polygons()[o] if o >= 0 else np.zeros((0, 2)) for o in cells.owner]

    def normalized_second_moments(self, z: Any) -> tuple[np.ndarray, np.ndarray]:
        """Dimensionless second moment G_i of every cell, and whether it touches the boundary.

        G_i = int_{V_i} rho |x - c_i|^2 / (d m_i |V_i|^(2/d)), which for a uniform density is
        the quantizer constant of the cell shape: 1/12 for a segment or square, 5 / (36 sqrt 3)
        = 0.0801875 for the regular hexagon (Conway & Sloane, Sphere Packings, ch. 21).
        """
        z = self.check_generators(z)
        ev = self.evaluate(z)
        offset = ev.centroids - z
        spread = ev.second_moments - ev.masses * (offset**2 if self.dim == 1 else np.sum(offset**2, axis=1))
        if self.dim == 1:
            lo, hi = self.cells(z)
            size = hi - lo
            boundary = (lo <= self.domain.lo) | (hi >= self.domain.hi)  # type: ignore[union-attr]
        else:
            cells: Cells2D = self.cells(z)
            size = np.zeros(self.k)
            owned = cells.owner >= 0
            areas = np.array([_polygon_area(p) for p in cells.polygons()])
            size[owned] = areas[cells.owner[owned]]
            boundary = np.ones(self.k, dtype=bool)
            boundary[owned] = cells.touches_boundary()[cells.owner[owned]]
        with np.errstate(divide="ignore", invalid="ignore"):
            g = spread / (self.dim * ev.masses * size ** (2.0 / self.dim))
        return g, boundary

    def __repr__(self) -> str:
        return f"CVTProblem(k={self.k}, density={self.density.name!r}, domain={self.domain!r})"


def _polygon_area(p: np.ndarray) -> float:
    if len(p) < 3:
        return 0.0
    q = np.roll(p, -1, axis=0)
    return 0.5 * float(np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]))
