"""The reference CVT energy E* that the environments report E / E* against.

E* is the lowest energy found from ``starts`` seeded uniform starts, each driven to a CVT by
Lloyd's method (10 steps) and then Newton's method on the exact sparse Hessian, with a Lloyd
step whenever Newton's step does not lower the energy. For log-concave 1-D densities (uniform,
linear, exponential) the CVT is unique (Fleischer 1964; Trushkin 1982), so E* is the global
minimum. Otherwise (the ``gaussian`` density, all 2-D problems) CVT energies have several local
minima and E* is the best of the starts: at k = 8 we measured, from 20 Lloyd runs each, two
distinct minima 0.56 % apart for the 2-D ``linear`` density and 0.22 % apart for ``gaussian``,
each reached from about half of the starts, so 8 starts miss the lower one with probability
~2^-8.

Search algorithms proper live in :mod:`baselines.cvt`; this is only what an environment needs
to report a converged value, kept small and cached per problem.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse.linalg as spla

from quant_envs.cvt.domain import Interval
from quant_envs.cvt.problem import CVTProblem

_LLOYD_STEPS = 10
_NEWTON_STEPS = 40


def local_cvt(problem: CVTProblem, z: np.ndarray, rel_tol: float = 1e-12) -> tuple[np.ndarray, float]:
    """A CVT near ``z``: Lloyd, then safeguarded Newton, to ||grad|| <= rel_tol ||grad(z)||."""
    ev = problem.evaluate(z)
    target = rel_tol * float(np.linalg.norm(ev.gradient))
    for _ in range(_LLOYD_STEPS):
        z = ev.centroids
        ev = problem.evaluate(z)
    for _ in range(_NEWTON_STEPS):
        g = ev.gradient
        if float(np.linalg.norm(g)) <= target:
            break
        z_new = ev.centroids  # Lloyd's step: the fallback, never increases E
        try:
            step = spla.spsolve(problem.hessian(z).tocsc(), -g.ravel()).reshape(z.shape)
            if np.all(np.isfinite(step)) and float(np.sum(step * g)) < 0.0:
                cand = problem.domain.clip(z + step)
                ev_c = problem.evaluate(cand)
                if ev_c.energy <= ev.energy:
                    z, ev = cand, ev_c
                    continue
        except (RuntimeError, ValueError):  # singular Hessian: Lloyd's step below
            pass
        z, ev = z_new, problem.evaluate(z_new)
    return z, ev.energy


def reference_energy(problem: CVTProblem, starts: int = 8, seed: int = 0) -> float:
    """E*: the lowest CVT energy from ``starts`` seeded starts (see the module docstring)."""
    rng = np.random.default_rng(seed)
    best = np.inf
    for _ in range(starts):
        _, e = local_cvt(problem, problem.random_generators(rng))
        best = min(best, e)
    return float(best)


@functools.lru_cache(maxsize=64)
def _cached(k: int, density: str, domain: tuple) -> float:
    arg = domain if len(domain) == 2 and not isinstance(domain[0], tuple) else [list(v) for v in domain]
    return reference_energy(CVTProblem(k, density, arg))


def cached_reference_energy(problem: CVTProblem, density_arg: object) -> float:
    """E* for ``problem``, cached across environments when the density is given by name."""
    if isinstance(density_arg, str):
        dom = problem.domain
        key = (dom.lo, dom.hi) if isinstance(dom, Interval) else tuple(map(tuple, dom.vertices.tolist()))
        return _cached(problem.k, density_arg, key)
    return reference_energy(problem)
