"""1-D Voronoi cells (bounded by midpoints of sorted generators) and their integrals.

Every integral is taken in the generator's local coordinate y = x - z_i, so a moment about z_i is
never the difference of two large numbers: the gradient 2 m_i (z_i - c_i) = -2 int rho y stays
accurate to a few ulps of the cell's own size, which is what lets the solvers drive the relative
gradient norm down to 1e-8 and beyond at k = 4096. Densities rho = c0 + c1 x (uniform, linear)
use closed forms; any other density uses Gauss-Legendre with 10 nodes on pieces no longer than
half the density's length scale, or 6 nodes once every cell is shorter than an eighth of it
(error at rounding level, ~1e-16 relative, for the named densities).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from quant_envs.cvt.density import Density
from quant_envs.cvt.domain import Interval
from quant_envs.cvt.quadrature import gauss_legendre01

_GL_NODES = 10
_MAX_PIECES = 256


@dataclass(frozen=True)
class Cells1D:
    """Cells in the generators' input order: [lo_i, hi_i], with sort permutation ``order``."""

    lo: np.ndarray
    hi: np.ndarray
    order: np.ndarray  # z[order] is sorted


def cells_1d(z: np.ndarray, domain: Interval) -> Cells1D:
    """Voronoi cells of generators ``z`` (any order, ties allowed) clipped to the interval."""
    order = np.argsort(z, kind="stable")
    zs = z[order]
    mids = 0.5 * (zs[:-1] + zs[1:])
    lo_s = np.clip(np.concatenate([[domain.lo], mids]), domain.lo, domain.hi)
    hi_s = np.clip(np.concatenate([mids, [domain.hi]]), domain.lo, domain.hi)
    lo, hi = np.empty_like(z), np.empty_like(z)
    lo[order], hi[order] = lo_s, hi_s
    return Cells1D(lo, hi, order)


def integrals_1d(z: np.ndarray, domain: Interval, density: Density) -> tuple[np.ndarray, ...]:
    """Per cell: mass int rho, first moment int rho (x - z), energy int rho (x - z)^2."""
    cells = cells_1d(z, domain)
    width = cells.hi - cells.lo
    p, q = cells.lo - z, cells.hi - z
    if density.linear_coeffs is not None:
        c0, c1 = density.linear_coeffs
        r0 = c0 + c1 * z  # rho(z + y) = r0 + c1 y
        # Factored int_p^q y^n dy: no cancellation when p < 0 < q.
        i0 = width
        i1 = width * (p + q) / 2.0
        i2 = width * (p * p + p * q + q * q) / 3.0
        i3 = width * (p + q) * (p * p + q * q) / 4.0
        return r0 * i0 + c1 * i1, r0 * i1 + c1 * i2, r0 * i2 + c1 * i3
    pieces, n_nodes = 1, _GL_NODES
    if np.isfinite(density.length_scale) and len(width):
        wmax = float(np.max(width))
        pieces = int(min(_MAX_PIECES, max(1, np.ceil(wmax / (0.5 * density.length_scale)))))
        if wmax <= density.length_scale / 8:  # tiny cells: 6 nodes are exact to rounding already
            n_nodes = 6
    nodes, weights = gauss_legendre01(n_nodes)
    s = (np.arange(pieces)[:, None] + nodes[None, :]).ravel() / pieces  # (pieces * nodes,)
    w = np.tile(weights, pieces) / pieces
    y = p[:, None] + width[:, None] * s[None, :]
    rho = np.asarray(density((z[:, None] + y).ravel()), dtype=float).reshape(y.shape)
    wr = rho * (w[None, :] * width[:, None])
    return wr.sum(axis=1), (wr * y).sum(axis=1), (wr * y * y).sum(axis=1)


def hessian_1d(z: np.ndarray, masses: np.ndarray, domain: Interval, density: Density) -> sp.csr_array:
    """The tridiagonal Hessian of the CVT energy.

    For neighbours i, j with boundary b between them and d = |z_j - z_i|:
    d2E/dz_i dz_j = -rho(b) d / 2, d2E/dz_i^2 = 2 m_i - sum over its moving boundaries rho(b) d / 2
    (the 1-D case of the formula in :mod:`quant_envs.cvt.cells2d`). A boundary outside the
    open interval does not move and contributes nothing.
    """
    order = np.argsort(z, kind="stable")
    zs = z[order]
    gap = np.diff(zs)
    mids = zs[:-1] + 0.5 * gap
    moving = (mids > domain.lo) & (mids < domain.hi)
    off = np.where(moving, -np.asarray(density(mids), dtype=float) * gap / 2.0, 0.0)
    diag = 2.0 * masses[order]
    diag[:-1] += off
    diag[1:] += off
    k = len(z)
    rows = np.concatenate([order, order[:-1], order[1:]])
    cols = np.concatenate([order, order[1:], order[:-1]])
    vals = np.concatenate([diag, off, off])
    return sp.csr_array((vals, (rows, cols)), shape=(k, k))
