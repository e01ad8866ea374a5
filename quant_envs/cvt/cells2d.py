"""2-D Voronoi cells clipped to a convex polygon, and their integrals.

Cells. Neighbours come from ``scipy.spatial.Delaunay`` (Qhull): the Voronoi cell of z_i is the
intersection of the half-planes {x : |x - z_i| <= |x - z_j|} over its Delaunay neighbours j.
Every cell starts as the domain polygon and is cut by those half-planes one at a time
(Sutherland-Hodgman), all cells at once with numpy. This is exact for any convex domain and any
number of points, needs no mirror points, and keeps generators on (or outside) the boundary
working. Each polygon edge remembers which neighbour cut it (or -1 for the domain boundary),
which the Hessian needs. Coinciding generators share one cell: the first of them (lowest index)
owns it and the others get an empty cell (mass 0, gradient 0, centroid at the generator).

Integrals. Cells are stored in the generator's local coordinates y = x - z_i, fanned into
triangles from their first vertex, and integrated with Dunavant's symmetric degree-8 rule
(:mod:`quant_envs.cvt.quadrature`); triangles larger than the density's length scale are split
into 4**level pieces first. Moments about z_i are then sums of small numbers, with no
cancellation.

Hessian (Iri, Murota & Ohya 1984; Liu et al. 2009, "On centroidal Voronoi tessellation - energy
smoothness and fast computation", eq. for the second derivatives): with d_ij = |z_j - z_i| and
e_ij the shared edge,

    d2E/dz_i dz_j = (2 / d_ij) int_{e_ij} rho(x) (x - z_i)(x - z_j)^T ds,
    d2E/dz_i^2   = 2 m_i I - sum_j (2 / d_ij) int_{e_ij} rho(x) (x - z_i)(x - z_i)^T ds,

edge integrals by 8-point Gauss-Legendre (split like the triangles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay, QhullError

from quant_envs.cvt.density import Density
from quant_envs.cvt.domain import ConvexPolygon
from quant_envs.cvt.quadrature import gauss_legendre01, refinement_level, rule_degree, triangle_rule

_MAX_LEVEL = 5
_EDGE_NODES = 8


@dataclass(frozen=True)
class Cells2D:
    """Clipped cells of the distinct generators.

    ``points``: distinct generators (n, 2); ``owner``: for each input generator, the index of its
    distinct point if it owns that cell, else -1 (a repeated generator); ``verts``: polygon
    vertices in local coordinates (n, M, 2), first ``count[i]`` valid, counter-clockwise;
    ``labels``: neighbour index that cut edge (v_a, v_a+1), or -1 for the domain boundary.
    """

    points: np.ndarray
    owner: np.ndarray
    verts: np.ndarray
    count: np.ndarray
    labels: np.ndarray

    def polygons(self) -> list[np.ndarray]:
        """Cells of the distinct generators in global coordinates."""
        return [self.verts[i, : self.count[i]] + self.points[i] for i in range(len(self.points))]

    def touches_boundary(self) -> np.ndarray:
        """True for cells with an edge on the domain boundary (or empty cells)."""
        m = self.verts.shape[1]
        valid = np.arange(m)[None, :] < self.count[:, None]
        return np.any(valid & (self.labels == -1), axis=1) | (self.count < 3)


def neighbour_pairs(points: np.ndarray) -> np.ndarray:
    """Pairs (i, j), i < j, whose Voronoi cells may share an edge (Delaunay edges)."""
    n = len(points)
    if n < 2:
        return np.zeros((0, 2), dtype=np.intp)
    if n <= 4:
        i, j = np.triu_indices(n, k=1)
        return np.stack([i, j], axis=1)
    try:
        tri = Delaunay(points)
    except QhullError:
        centred = points - points.mean(axis=0)
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        if sv[1] <= 1e-12 * sv[0]:  # collinear: neighbours are consecutive along the line
            order = np.argsort(centred @ vt[0])
            return np.sort(np.stack([order[:-1], order[1:]], axis=1), axis=1)
        tri = Delaunay(points, qhull_options="QJ")  # precision trouble: joggle the input
    s = tri.simplices
    edges = np.concatenate([s[:, [0, 1]], s[:, [1, 2]], s[:, [0, 2]]])
    if len(tri.coplanar):  # points Qhull set aside as (nearly) coincident with a vertex
        cp, near = tri.coplanar[:, 0], tri.coplanar[:, 2]
        indptr, nbrs = tri.vertex_neighbor_vertices
        extra = [np.stack([np.full(indptr[v + 1] - indptr[v] + 1, p), np.append(nbrs[indptr[v]:indptr[v + 1]], v)], 1)
                 for p, v in zip(cp, near, strict=True)]
        edges = np.concatenate([edges, *extra])
    lo, hi = np.minimum(edges[:, 0], edges[:, 1]), np.maximum(edges[:, 0], edges[:, 1])
    code = np.unique(lo[lo != hi].astype(np.int64) * n + hi[lo != hi])
    return np.stack([code // n, code % n], axis=1).astype(np.intp)


def clip_cells(z: np.ndarray, domain: ConvexPolygon) -> Cells2D:
    """Voronoi cells of the generators ``z`` (k, 2), clipped to the convex ``domain``."""
    # Distinct generators: the first of equal points (lowest index) owns the cell.
    order = np.lexsort((z[:, 1], z[:, 0]))
    zs = z[order]
    new = np.ones(len(z), dtype=bool)
    new[1:] = np.any(zs[1:] != zs[:-1], axis=1)
    owner = np.full(len(z), -1, dtype=np.intp)
    if np.all(new):
        points = z
        owner[:] = np.arange(len(z))
    else:
        # Equal points are adjacent after lexsort (stable), the first being the lowest index.
        firsts = np.sort(order[new])
        points = z[firsts]
        owner[firsts] = np.arange(len(firsts))
    n = len(points)
    fast = _delaunay_cells(points, domain)
    if fast is None:
        return _clipped_cells(points, owner, neighbour_pairs(points), domain, np.arange(n))
    verts_f, count_f, labels_f, interior, pairs = fast
    slow = np.flatnonzero(~interior)
    clipped = _clipped_cells(points, owner, pairs, domain, slow)
    width = max(verts_f.shape[1], clipped.verts.shape[1])
    verts = np.zeros((n, width, 2))
    labels = np.full((n, width), -2, dtype=np.intp)
    count = np.zeros(n, dtype=np.intp)
    verts[interior, : verts_f.shape[1]] = verts_f[interior]
    labels[interior, : verts_f.shape[1]] = labels_f[interior]
    count[interior] = count_f[interior]
    verts[slow, : clipped.verts.shape[1]] = clipped.verts[slow]
    labels[slow, : clipped.verts.shape[1]] = clipped.labels[slow]
    count[slow] = clipped.count[slow]
    return Cells2D(points, owner, verts, count, labels)


def _delaunay_cells(points: np.ndarray, domain: ConvexPolygon):
    """Unclipped Voronoi cells from the Delaunay triangulation (circumcentres in angular order).

    Returns (verts, count, labels, interior, pairs): ``interior`` marks the cells that need no
    clipping (generator not on the convex hull and every cell vertex inside the domain); the
    other rows are left for :func:`_clipped_cells`. None when Qhull cannot triangulate the
    points plainly (then every cell is clipped).
    """
    n = len(points)
    if n < 5:
        return None
    try:
        tri = Delaunay(points)
    except QhullError:
        return None
    if len(tri.coplanar):
        return None
    s = tri.simplices.copy()
    a, b, c = points[s[:, 0]], points[s[:, 1]], points[s[:, 2]]
    ab, ac = b - a, c - a
    cross = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    flip = cross < 0  # make every triangle counter-clockwise
    s[flip] = s[flip][:, [0, 2, 1]]
    cross = np.abs(cross)
    a, b, c = points[s[:, 0]], points[s[:, 1]], points[s[:, 2]]
    ab, ac = b - a, c - a
    ab2, ac2 = np.sum(ab * ab, 1), np.sum(ac * ac, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cc = a + np.stack([ac[:, 1] * ab2 - ab[:, 1] * ac2, ab[:, 0] * ac2 - ac[:, 0] * ab2], 1) / (2.0 * cross[:, None])
    t_count = len(s)
    # One entry per (vertex, triangle): the vertex, the triangle, and the next vertex counter-clockwise.
    vert = s.ravel()
    tid = np.repeat(np.arange(t_count), 3)
    nxt = s[:, [2, 0, 1]].ravel()  # for (i, a, b) CCW the edge after cc(t) is the bisector of (i, b)
    cent = (a + b + c)[tid] / 3.0 - points[vert]
    # Sort by vertex, then angle: one float key (angle mapped into [0, 1)) sorts faster than lexsort.
    order = np.argsort(vert + (np.arctan2(cent[:, 1], cent[:, 0]) + np.pi) / (2.0 * np.pi + 1e-9), kind="stable")
    vert, tid, nxt = vert[order], tid[order], nxt[order]
    degree = np.bincount(vert, minlength=n)
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    col = np.arange(len(vert)) - start[vert]
    width = int(degree.max())
    verts = np.zeros((n, width + 1, 2))
    labels = np.full((n, width + 1), -2, dtype=np.intp)
    verts[vert, col] = cc[tid] - points[vert]
    labels[vert, col] = nxt
    ok_tri = np.isfinite(cc).all(axis=1) & domain.contains(np.nan_to_num(cc, nan=np.inf, posinf=np.inf))
    bad = np.bincount(vert, weights=~ok_tri[tid], minlength=n) > 0
    hull = np.zeros(n, dtype=bool)
    hull[tri.convex_hull.ravel()] = True
    inside = ~bad & ~hull
    indptr, nbrs = tri.vertex_neighbor_vertices
    src = np.repeat(np.arange(n), np.diff(indptr))
    keep = src < nbrs
    pairs = np.stack([src[keep], nbrs[keep]], axis=1).astype(np.intp)
    return verts, degree, labels, inside, pairs


def _clipped_cells(points: np.ndarray, owner: np.ndarray, pairs: np.ndarray, domain: ConvexPolygon,
                   rows_wanted: np.ndarray) -> Cells2D:
    """Cells of ``rows_wanted`` by clipping the domain with every neighbour's half-plane."""
    n = len(points)
    want = np.zeros(n, dtype=bool)
    want[rows_wanted] = True
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    keep = want[src]
    src, dst = src[keep], dst[keep]
    perm = np.argsort(src, kind="stable")
    src, dst = src[perm], dst[perm]
    degree = np.bincount(src, minlength=n)
    start = np.concatenate([[0], np.cumsum(degree)[:-1]])
    rank = np.arange(len(src)) - start[src]

    base = domain.vertices
    width = len(base) + (int(degree.max()) if n and len(src) else 0) + 1
    verts = np.zeros((n, width, 2))
    verts[:, : len(base)] = base[None, :, :] - points[:, None, :]
    labels = np.full((n, width), -2, dtype=np.intp)
    labels[:, : len(base)] = -1
    count = np.full(n, len(base), dtype=np.intp)
    for t in range(int(degree.max()) if len(src) else 0):
        sel = rank == t
        rows, nbr = src[sel], dst[sel]
        m = int(count[rows].max())
        v, c, lab = _clip(verts[rows, : m + 1], count[rows], labels[rows, : m + 1], points[nbr] - points[rows], nbr)
        verts[rows, : m + 1], count[rows], labels[rows, : m + 1] = v, c, lab
    m = int(count.max()) if n else 0
    return Cells2D(points, owner, verts[:, :m], count, labels[:, :m])


def _clip(
    verts: np.ndarray, count: np.ndarray, labels: np.ndarray, d: np.ndarray, new_label: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut each polygon (local coordinates) by the half-plane y . d <= |d|^2 / 2.

    ``verts`` has one spare column beyond the largest count: a convex polygon cut by a line gains
    at most one vertex.
    """
    b, width = labels.shape
    m = width - 1
    idx = np.arange(m)[None, :]
    valid = idx < count[:, None]
    v = verts[:, :m]
    s = v[..., 0] * d[:, 0, None] + v[..., 1] * d[:, 1, None] - 0.5 * np.sum(d * d, axis=1)[:, None]
    inside = s <= 0.0
    nxt = np.where(idx + 1 < count[:, None], idx + 1, 0)
    s_b = np.take_along_axis(s, nxt, axis=1)
    in_b = np.take_along_axis(inside, nxt, axis=1)
    v_b = np.take_along_axis(v, nxt[..., None], axis=1)
    keep = valid & inside
    cross = valid & (inside != in_b)
    t = np.where(cross, s / np.where(cross, s - s_b, 1.0), 0.0)
    inter = v + t[..., None] * (v_b - v)
    lab_inter = np.where(inside, new_label[:, None], labels[:, :m])
    cand = np.stack([v, inter], axis=2).reshape(b, 2 * m, 2)
    cmask = np.stack([keep, cross], axis=2).reshape(b, 2 * m)
    clab = np.stack([labels[:, :m], lab_inter], axis=2).reshape(b, 2 * m)
    new_count = cmask.sum(axis=1)
    rows, cols = np.nonzero(cmask)
    dest = (np.cumsum(cmask, axis=1) - 1)[rows, cols]
    out = np.zeros((b, width, 2))
    out_lab = np.full((b, width), -2, dtype=np.intp)
    out[rows, dest] = cand[rows, cols]
    out_lab[rows, dest] = clab[rows, cols]
    return out, new_count, out_lab


@dataclass(frozen=True)
class CellIntegrals2D:
    """Per distinct cell: mass, first moment int rho (x - z) (n, 2), energy int rho |x - z|^2."""

    mass: np.ndarray
    first: np.ndarray
    energy: np.ndarray


def cell_integrals(cells: Cells2D, density: Density) -> CellIntegrals2D:
    n, m = cells.count.shape[0], cells.verts.shape[1]
    mass, first, energy = np.zeros(n), np.zeros((n, 2)), np.zeros(n)
    if n == 0 or m < 3:
        return CellIntegrals2D(mass, first, energy)
    # Fan triangles (v0, v_a, v_a+1), a = 1 .. count - 2.
    a = np.arange(1, m - 1)
    cell, a = np.nonzero(a[None, :] < (cells.count - 1)[:, None])
    a = a + 1
    p0 = cells.verts[cell, 0]
    p1 = cells.verts[cell, a]
    p2 = cells.verts[cell, a + 1]
    area = 0.5 * ((p1[:, 0] - p0[:, 0]) * (p2[:, 1] - p0[:, 1]) - (p2[:, 0] - p0[:, 0]) * (p1[:, 1] - p0[:, 1]))
    diam = np.sqrt(np.max(np.stack([np.sum((p1 - p0) ** 2, 1), np.sum((p2 - p1) ** 2, 1), np.sum((p0 - p2) ** 2, 1)]), 0))
    level = refinement_level(diam, density.length_scale, _MAX_LEVEL)
    # rho times a polynomial of degree 2: exact with a rule of degree deg(rho) + 2.
    degree = rule_degree(None if density.degree is None else density.degree + 2)
    for lv in np.unique(level):
        sel = level == lv
        bary, w = triangle_rule(int(lv), degree)
        y = (bary[None, :, 0, None] * p0[sel, None] + bary[None, :, 1, None] * p1[sel, None]
             + bary[None, :, 2, None] * p2[sel, None])  # (T, q, 2) local points
        c = cell[sel]
        x = y + cells.points[c][:, None, :]
        rho = np.asarray(density(x.reshape(-1, 2)), dtype=float).reshape(y.shape[:2])
        wr = rho * w[None, :] * area[sel, None]
        mass += np.bincount(c, wr.sum(1), minlength=n)
        first[:, 0] += np.bincount(c, (wr * y[..., 0]).sum(1), minlength=n)
        first[:, 1] += np.bincount(c, (wr * y[..., 1]).sum(1), minlength=n)
        energy += np.bincount(c, (wr * np.sum(y * y, axis=-1)).sum(1), minlength=n)
    return CellIntegrals2D(mass, first, energy)


def hessian_2d(cells: Cells2D, integrals: CellIntegrals2D, density: Density, k: int) -> sp.csr_array:
    """Sparse Hessian (2k, 2k) of the CVT energy in the ordering z.ravel() = (x0, y0, x1, ...)."""
    n, m = cells.count.shape[0], cells.verts.shape[1]
    # Map distinct cells back to the input generators that own them.
    owned = np.flatnonzero(cells.owner >= 0)
    gen_of = np.empty(n, dtype=np.intp)
    gen_of[cells.owner[owned]] = owned
    rows, cols, vals = [], [], []

    def add_block(i: np.ndarray, j: np.ndarray, blocks: np.ndarray) -> None:
        for r in range(2):
            for c in range(2):
                rows.append(2 * i + r)
                cols.append(2 * j + c)
                vals.append(blocks[:, r, c])

    diag = np.zeros((n, 2, 2))
    diag[:, 0, 0] = diag[:, 1, 1] = 2.0 * integrals.mass
    if m >= 2:
        idx = np.arange(m)[None, :]
        cell, a = np.nonzero((idx < cells.count[:, None]) & (cells.labels >= 0))
        if len(cell):
            nb = cells.labels[cell, a]
            b = np.where(a + 1 < cells.count[cell], a + 1, 0)
            ya, yb = cells.verts[cell, a], cells.verts[cell, b]
            d = cells.points[nb] - cells.points[cell]
            dist = np.linalg.norm(d, axis=1)
            length = np.linalg.norm(yb - ya, axis=1)
            # rho y y^T on an edge: Gauss-Legendre with n nodes is exact to degree 2n - 1.
            n_nodes = _EDGE_NODES if density.degree is None else max(1, (density.degree + 3 + 1) // 2)
            nodes, weights = gauss_legendre01(n_nodes)
            pieces = 2 ** int(refinement_level(float(length.max()), density.length_scale, _MAX_LEVEL))
            s = (np.arange(pieces)[:, None] + nodes[None, :]).ravel() / pieces
            w = np.tile(weights, pieces) / pieces
            y = ya[:, None, :] + s[None, :, None] * (yb - ya)[:, None, :]  # (E, q, 2)
            x = y + cells.points[cell][:, None, :]
            rho = np.asarray(density(x.reshape(-1, 2)), dtype=float).reshape(y.shape[:2])
            wr = rho * w[None, :] * length[:, None]
            yy = np.einsum("eq,eqr,eqc->erc", wr, y, y)
            j1 = np.einsum("eq,eqr->er", wr, y)
            scale = (2.0 / dist)[:, None, None]
            off = scale * (yy - j1[:, :, None] * d[:, None, :])
            np.add.at(diag, cell, -scale * yy)
            add_block(gen_of[cell], gen_of[nb], off)
    add_block(gen_of, gen_of, diag)
    h = sp.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * k, 2 * k)
    )
    return ((h + h.T) * 0.5).tocsr()
