"""Pieces the CVT solvers share: the shifted objective, a derivative-based line search, and a
truncated-Newton iteration.

Why a line search on derivatives: at the relative gradient norms the study asks for (1e-8), the
energy changes of a step fall below the energy's rounding error (at k = 4096 in 1-D,
E ~ 5e-9 while a late step changes it by ~1e-25). The directional derivative g . s is computed
from per-cell moments without cancellation and stays accurate, so steps are chosen by a secant on
it, and the energy only has to not increase beyond rounding (Armijo with a rounding allowance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from quant_envs.cvt import CVTProblem

#: Relative rounding allowance on objective values in the sufficient-decrease test.
_ROUNDING = 1e-13
_ARMIJO = 1e-4


@dataclass
class Point:
    """An evaluated point of an objective: z, f(z), grad f(z) and the cell masses at z."""

    z: np.ndarray
    f: float
    g: np.ndarray
    masses: np.ndarray
    centroids: np.ndarray
    scale: float  # magnitude of the terms in f, for the rounding allowance


class Objective:
    """f(z) = E(z) - <v, z> on one level (v = 0 on the finest level)."""

    def __init__(self, problem: CVTProblem, shift: np.ndarray | None = None) -> None:
        self.problem = problem
        self.shift = shift

    def at(self, z: np.ndarray) -> Point:
        ev = self.problem.evaluate(z)
        f, g, scale = ev.energy, ev.gradient, abs(ev.energy)
        if self.shift is not None:
            lin = self.shift * z
            f = f - float(np.sum(lin))
            g = g - self.shift
            scale += float(np.sum(np.abs(lin)))
        return Point(z, f, g, ev.masses, ev.centroids, scale)

    def hessian(self, z: np.ndarray) -> sp.csr_array:
        return self.problem.hessian(z)

    def project(self, z: np.ndarray) -> np.ndarray:
        return self.problem.domain.clip(z)


def line_search(obj: Objective, p0: Point, direction: np.ndarray, max_steps: int = 8) -> Point | None:
    """Move from ``p0`` along ``direction`` (projected onto the domain); None if no progress.

    Tries the full step s; if the directional derivative shows positive curvature along s and the
    secant root theta = -g0.s / (g1.s - g0.s) is far from 1, tries theta (safeguarded to
    [0.05, 8]). Falls back to halving. A point is accepted if it satisfies Armijo up to rounding.
    """
    alpha = 1.0
    for _ in range(max_steps):
        z1 = obj.project(p0.z + alpha * direction)
        s = z1 - p0.z
        d0 = float(np.sum(p0.g * s))
        if not d0 < 0.0:
            return None
        p1 = obj.at(z1)
        tol = _ROUNDING * (p0.scale + p1.scale)
        ok = p1.f <= p0.f + _ARMIJO * d0 + tol
        d1 = float(np.sum(p1.g * s))
        if d1 > d0:  # positive curvature along s: the secant root is the 1-D minimiser estimate
            theta = -d0 / (d1 - d0)
            if ok and (abs(theta - 1.0) <= 0.3 or abs(d1) <= 0.3 * abs(d0)):
                return p1
            theta = float(np.clip(theta, 0.05, 8.0))
            z2 = obj.project(p0.z + theta * s)
            p2 = obj.at(z2)
            d2 = float(np.sum(p0.g * (z2 - p0.z)))
            ok2 = p2.f <= p0.f + _ARMIJO * d2 + _ROUNDING * (p0.scale + p2.scale)
            if ok2 and (not ok or p2.f <= p1.f + tol):
                return p2
            if ok:
                return p1
            alpha *= min(theta, 0.5)
            continue
        if ok:
            return p1
        alpha *= 0.5
    return None


def newton_cg_direction(
    hessian: sp.csr_array, g: np.ndarray, precond: np.ndarray, max_cg: int, eta: float
) -> np.ndarray:
    """Truncated preconditioned CG on H d = -g (Nash's truncated Newton inner solve).

    Stops after ``max_cg`` iterations, when ||r|| <= eta ||g||, or at negative curvature (then
    the last iterate, or the preconditioned steepest-descent direction if there is none yet).
    """
    return _truncated_pcg(hessian, g, precond, max_cg, eta, radius=None)[0]


def _truncated_pcg(
    hessian: sp.csr_array, g: np.ndarray, precond: np.ndarray, max_cg: int, eta: float, radius: float | None
) -> tuple[np.ndarray, bool]:
    """Preconditioned CG on H d = -g, truncated at ``max_cg`` iterations or ||r|| <= eta ||g||.

    Without ``radius`` (Nash): negative curvature stops with the last iterate (the first search
    direction if there is none yet). With ``radius`` (Steihaug-Toint): negative curvature, or an
    iterate leaving ||d||_M <= radius (M = diag(precond)), ends on the region's boundary along the
    current direction. Returns (d, ended on the boundary).
    """
    gf = g.ravel()
    x = np.zeros_like(gf)
    r = -gf
    y = r / precond
    p = y.copy()
    ry = float(r @ y)
    gnorm = float(np.linalg.norm(gf))
    radius_sq = np.inf if radius is None else radius**2

    def to_boundary() -> np.ndarray:
        # tau >= 0 with ||x + tau p||_M = radius (x is inside, so the root is unique)
        a = float(p @ (precond * p))
        b = float(x @ (precond * p))
        c = float(x @ (precond * x)) - radius_sq
        tau = (-b + np.sqrt(max(b * b - a * c, 0.0))) / a
        return x + tau * p

    for it in range(max_cg):
        hp = hessian @ p
        curv = float(p @ hp)
        if curv <= 1e-14 * float(p @ (precond * p)):
            if radius is not None:
                return to_boundary().reshape(g.shape), True
            return (p if it == 0 else x).reshape(g.shape), False
        a = ry / curv
        x_new = x + a * p
        if float(x_new @ (precond * x_new)) >= radius_sq:
            return to_boundary().reshape(g.shape), True
        x = x_new
        r -= a * hp
        if np.linalg.norm(r) <= eta * gnorm:
            break
        y = r / precond
        ry_new = float(r @ y)
        p = y + (ry_new / ry) * p
        ry = ry_new
    return x.reshape(g.shape), False


def lloyd_preconditioner(masses: np.ndarray, dim: int) -> np.ndarray:
    """2 m_i per coordinate (the diagonal Lloyd's method divides by); empty cells get the mean."""
    m = np.asarray(masses, dtype=float)
    pos = m > 0
    fill = float(np.mean(m[pos])) if np.any(pos) else 1.0
    m = np.where(pos, m, fill)
    return np.repeat(2.0 * m, dim) if dim > 1 else 2.0 * m


def tn_iteration(obj: Objective, p0: Point, max_cg: int, eta: float) -> Point | None:
    """One truncated-Newton step: Hessian, truncated PCG, line search."""
    h = obj.hessian(p0.z)
    d = newton_cg_direction(h, p0.g, lloyd_preconditioner(p0.masses, obj.problem.dim), max_cg, eta)
    return line_search(obj, p0, d)


def steihaug_direction(
    hessian: sp.csr_array, g: np.ndarray, precond: np.ndarray, max_cg: int, eta: float, radius: float
) -> tuple[np.ndarray, bool]:
    """Steihaug-Toint truncated PCG on H d = -g within ||d||_M <= ``radius`` (M = diag(precond)).

    Unlike :func:`newton_cg_direction`, negative curvature is not a stop with the last iterate:
    the step follows the negative-curvature direction to the trust-region boundary (and an
    iterate that would leave the region is cut at the boundary). Returns (d, on_boundary).
    """
    return _truncated_pcg(hessian, g, precond, max_cg, eta, radius=radius)


def tr_iteration(obj: Objective, p0: Point, max_cg: int, eta: float, radius: float) -> tuple[Point | None, float]:
    """One trust-region Newton-CG step (Steihaug-Toint direction, derivative line search as the
    acceptance test); returns the new point (None if no progress) and the updated radius.

    Radius update: a boundary step taken in full doubles it; a shortened or rejected step sets it
    to a quarter of the tried step's M-norm (energy ratios are not used: near 1e-8 they are rounding).
    """
    precond = lloyd_preconditioner(p0.masses, obj.problem.dim)
    d, on_boundary = steihaug_direction(obj.hessian(p0.z), p0.g, precond, max_cg, eta, radius)
    q = line_search(obj, p0, d)
    d_norm = float(np.sqrt(np.sum(precond * d.ravel() ** 2)))
    if q is None:
        return None, 0.25 * d_norm
    s = (q.z - p0.z).ravel()
    s_norm = float(np.sqrt(np.sum(precond * s**2)))
    if s_norm >= 0.99 * d_norm:
        return q, 2.0 * radius if on_boundary else max(radius, s_norm)
    return q, max(s_norm, 0.25 * radius)


def lloyd_iteration(obj: Objective, p0: Point) -> Point | None:
    """One Lloyd step on f(z) = E(z) - <v, z>: z_i <- c_i + v_i / (2 m_i), projected on the domain.

    The step minimises the quadratic majorant sum_i int_{V_i(z)} rho |x - y_i|^2 - <v, y> of f
    (cells frozen at z), so f never increases (up to quadrature rounding): a monotone smoother
    for any shift v, with no line search and no Hessian. Generators of empty cells stay put.
    None if the step does not move or raises f beyond rounding.
    """
    m = p0.masses
    pos = m > 0
    target = p0.centroids.copy()
    if obj.shift is not None:
        scale = 2.0 * np.where(pos, m, 1.0)
        target += obj.shift / (scale if obj.problem.dim == 1 else scale[:, None])
    target[~pos] = p0.z[~pos]
    z1 = obj.project(target)
    if np.array_equal(z1, p0.z):
        return None
    p1 = obj.at(z1)
    if p1.f > p0.f + _ROUNDING * (p0.scale + p1.scale):
        return None
    return p1


class LBFGSMemory:
    """Limited-memory BFGS inverse-Hessian model with Lloyd's scaling 1 / (2 m_i) as H0.

    Kept across calls (and across V-cycles): any step of the level, smoothing or coarse
    correction, adds its (s, y) pair; the shift <v, z> of a coarse objective changes from cycle to
    cycle but cancels in y = grad f(z + s) - grad f(z).
    """

    def __init__(self, size: int = 10) -> None:
        self.size = size
        self.pairs: list[tuple[np.ndarray, np.ndarray, float]] = []

    def add(self, s: np.ndarray, y: np.ndarray) -> None:
        s, y = s.ravel(), y.ravel()
        sy = float(s @ y)
        if sy > 1e-12 * float(np.linalg.norm(s) * np.linalg.norm(y)):
            self.pairs.append((s, y, 1.0 / sy))
            if len(self.pairs) > self.size:
                self.pairs.pop(0)

    def direction(self, g: np.ndarray, precond: np.ndarray) -> np.ndarray:
        q = g.ravel().copy()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * float(s @ q)
            alphas.append(a)
            q -= a * y
        r = q / precond
        if self.pairs:  # scale H0 = gamma D^-1 by the newest pair
            s, y, _ = self.pairs[-1]
            r *= float(s @ y) / float(y @ (y / precond))
        for (s, y, rho), a in zip(self.pairs, reversed(alphas), strict=True):
            b = rho * float(y @ r)
            r += (a - b) * s
        return -r.reshape(g.shape)


def lbfgs_iteration(obj: Objective, p0: Point, memory: LBFGSMemory) -> Point | None:
    """One L-BFGS step with the derivative-based line search; updates ``memory``."""
    d = memory.direction(p0.g, lloyd_preconditioner(p0.masses, obj.problem.dim))
    if not float(np.sum(d * p0.g)) < 0.0:  # stale memory: restart from the scaled gradient
        memory.pairs.clear()
        d = memory.direction(p0.g, lloyd_preconditioner(p0.masses, obj.problem.dim))
    p1 = line_search(obj, p0, d)
    if p1 is not None:
        memory.add(p1.z - p0.z, p1.g - p0.g)
    return p1
