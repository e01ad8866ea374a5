"""Grid transfers between levels of generators for the MG/Opt solver.

A coarse level is made by pairwise aggregation: generators are matched in pairs, d times in d
dimensions (pairs in 1-D, groups of up to four in 2-D), so each level has about 2^-d as many
generators. In 1-D the pairs are neighbours in sorted order; in 2-D each round matches the two
ends of the shortest Delaunay edges first (greedy heavy-edge matching) and then repeats on the
pair means.

* Restriction of positions: a coarse generator starts at the mean of its group.
* Prolongation of a coarse correction: ``"linear"`` interpolation between coarse generators
  (the default), or ``"constant"``: every generator of a group moves with the group, as in Du &
  Emelianenko's multilevel quantization.
* Restriction of gradients: kappa P^T (kappa is set by :mod:`baselines.cvt.multigrid`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from quant_envs.cvt.cells2d import neighbour_pairs

PROLONGATIONS = ("constant", "linear")


@dataclass(frozen=True)
class Transfer:
    """Aggregation of k fine generators into k_coarse groups, with its P and R."""

    group: np.ndarray  # (k,) coarse index of every fine generator
    k_coarse: int
    prolong_matrix: sp.csr_array  # (k, k_coarse), acts on each coordinate
    coarse_start: np.ndarray  # restricted positions, shape of a coarse generator array

    def restrict_positions(self) -> np.ndarray:
        return self.coarse_start

    def prolong(self, e: np.ndarray) -> np.ndarray:
        return self.prolong_matrix @ e

    def restrict_gradient(self, g: np.ndarray) -> np.ndarray:
        return self.prolong_matrix.T @ g


def aggregate(z: np.ndarray, dim: int) -> np.ndarray:
    """Group index for every generator after ``dim`` rounds of pairwise matching."""
    if dim == 1:
        order = np.argsort(z, kind="stable")
        group = np.empty(len(z), dtype=np.intp)
        group[order] = np.arange(len(z)) // 2
        return group
    group = np.arange(len(z))
    pts = z
    for _ in range(dim):
        pair_of = _match_pairs(pts)
        group = pair_of[group]
        counts = np.bincount(pair_of)
        pts = np.stack([np.bincount(pair_of, pts[:, c]) / counts for c in range(2)], axis=1)
    return group


def _match_pairs(points: np.ndarray) -> np.ndarray:
    """Greedy matching along the shortest Delaunay edges; returns a group index per point."""
    n = len(points)
    edges = neighbour_pairs(points)
    length = np.sum((points[edges[:, 0]] - points[edges[:, 1]]) ** 2, axis=1)
    matched = np.full(n, -1, dtype=np.intp)
    next_group = 0
    for i, j in edges[np.argsort(length, kind="stable")]:
        if matched[i] < 0 and matched[j] < 0:
            matched[i] = matched[j] = next_group
            next_group += 1
    single = matched < 0
    matched[single] = next_group + np.arange(int(single.sum()))
    # Renumber in order of first appearance so groups are deterministic and compact.
    _, first = np.unique(matched, return_index=True)
    rank = np.empty(len(first), dtype=np.intp)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[matched]


def build_transfer(z: np.ndarray, dim: int, prolongation: str = "constant") -> Transfer:
    """Aggregate the generators ``z`` and build P, R for the coarse level."""
    k = len(z)
    group = aggregate(z, dim)
    kc = int(group.max()) + 1
    counts = np.bincount(group, minlength=kc)
    if dim == 1:
        start = np.bincount(group, z, minlength=kc) / counts
    else:
        start = np.stack([np.bincount(group, z[:, c], minlength=kc) / counts for c in range(2)], axis=1)
    if prolongation == "constant" or kc == k:
        p = sp.csr_array((np.ones(k), (np.arange(k), group)), shape=(k, kc))
    elif dim == 1:
        p = _linear_1d(z, start)
    else:
        p = _linear_2d(z, start)
    return Transfer(group, kc, p, start)


def _linear_1d(z: np.ndarray, nodes: np.ndarray) -> sp.csr_array:
    """Piecewise-linear interpolation from (sorted) coarse nodes, constant beyond the ends."""
    order = np.argsort(nodes)
    xs = nodes[order]
    k, kc = len(z), len(nodes)
    if kc == 1:
        return sp.csr_array((np.ones(k), (np.arange(k), np.zeros(k, dtype=np.intp))), shape=(k, kc))
    j = np.clip(np.searchsorted(xs, z), 1, kc - 1)
    gap = xs[j] - xs[j - 1]
    t = np.clip((z - xs[j - 1]) / np.where(gap > 0, gap, 1.0), 0.0, 1.0)  # equal nodes: weight on one
    rows = np.concatenate([np.arange(k), np.arange(k)])
    cols = np.concatenate([order[j - 1], order[j]])
    return sp.csr_array((np.concatenate([1 - t, t]), (rows, cols)), shape=(k, kc))


def _linear_2d(z: np.ndarray, nodes: np.ndarray, corners: np.ndarray | None = None) -> sp.csr_array:
    """Piecewise-linear interpolation on the Delaunay triangulation of the coarse nodes.

    ``corners`` (the domain's vertices) are added as ghost nodes carrying the value of their
    nearest coarse node, so every point of the domain lies in a triangle (constant extrapolation
    towards the corners). A point is located among the triangles around its nearest node (the
    triangle whose smallest barycentric coordinate is largest); outside every triangle the
    barycentric coordinates are clipped to a convex combination.
    """
    from scipy.spatial import Delaunay, QhullError, cKDTree

    k, kc = len(z), len(nodes)
    owner = np.arange(kc)
    pts = nodes
    if corners is not None and kc >= 1:
        near = cKDTree(nodes).query(corners)[1]
        pts = np.concatenate([nodes, corners])
        owner = np.concatenate([owner, near])
    if kc < 2 or len(pts) < 3:
        return sp.csr_array((np.ones(k), (np.arange(k), np.zeros(k, dtype=np.intp))), shape=(k, kc))
    try:
        simplices = Delaunay(pts).simplices
    except QhullError:  # collinear coarse nodes: nearest node
        nearest = cKDTree(nodes).query(z)[1]
        return sp.csr_array((np.ones(k), (np.arange(k), nearest)), shape=(k, kc))
    # Star of every vertex: the simplices around it, padded with -1.
    vert = simplices.ravel()
    simp = np.repeat(np.arange(len(simplices)), 3)
    order = np.argsort(vert, kind="stable")
    vert, simp = vert[order], simp[order]
    deg = np.bincount(vert, minlength=len(pts))
    start = np.concatenate([[0], np.cumsum(deg)[:-1]])
    star = np.full((len(pts), int(deg.max())), -1, dtype=np.intp)
    star[vert, np.arange(len(vert)) - start[vert]] = simp
    nearest = cKDTree(pts).query(z)[1]
    cand = star[nearest]  # (k, D)
    valid = cand >= 0
    tri = pts[simplices[np.where(valid, cand, 0)]]  # (k, D, 3, 2)
    a, b, c = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    v0, v1, v2 = b - a, c - a, z[:, None, :] - a
    det = v0[..., 0] * v1[..., 1] - v0[..., 1] * v1[..., 0]
    l1 = (v2[..., 0] * v1[..., 1] - v2[..., 1] * v1[..., 0]) / det
    l2 = (v0[..., 0] * v2[..., 1] - v0[..., 1] * v2[..., 0]) / det
    bary = np.stack([1.0 - l1 - l2, l1, l2], axis=-1)
    score = np.where(valid, bary.min(axis=-1), -np.inf)
    best = np.argmax(score, axis=1)
    rows = np.arange(k)
    w = np.clip(bary[rows, best], 0.0, None)
    w /= w.sum(axis=1, keepdims=True)
    cols = owner[simplices[cand[rows, best]]]
    return sp.csr_array((w.ravel(), (np.repeat(rows, 3), cols.ravel())), shape=(k, kc))
