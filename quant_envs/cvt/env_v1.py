"""CVT environments, version 1: one row per generator, so one shared rule can be learned.

* :class:`CVT1DEnvV1` (``quant_envs/CVT1D-v1``), :class:`CVT2DEnvV1` (``quant_envs/CVT2D-v1``).

What changed from v0 (:mod:`quant_envs.cvt.env`) and why: v0 gave a flat observation and
action, so an MLP had to learn the same per-generator rule once per index, and it hid the scales
E0 and g0 that set its reward and termination; PPO ended far from a CVT on it. Here the
observation is a (k, f) matrix and the action a (k, d) matrix whose rows belong to the same
generator, so a policy that applies one network to every row (:mod:`agents.cvt_policy`) is
permutation-equivariant; the global scale terms are columns of every row; the reward is a log
ratio (the same size at every energy scale), and termination means converged: E / E* - 1 <= tol
against the reference CVT energy E* of :mod:`quant_envs.cvt.reference`, or a CVT of its own (a
local minimum).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from quant_envs.checks import check_finite_array, check_float, check_int
from quant_envs.cvt.env import _CVTEnv
from quant_envs.cvt.reference import cached_reference_energy

__all__ = ["CVT1DEnvV1", "CVT2DEnvV1", "GLOBAL_COLUMNS", "feature_columns"]

#: Per-row clip bounds of the features (documented in the class docstrings).
OFFSET_CLIP = 4.0
GRAD_CLIP = 16.0
RATIO_CLIP = 100.0
#: Names of the global columns, repeated in every row (the last four columns).
GLOBAL_COLUMNS = ("E/E*", "E/E0", "g/g0", "g0/(2Mh)")
#: Stationarity test for a CVT other than the reference: Lloyd's guaranteed decrease
#: sum_i m_i |z_i - c_i|^2, relative to E, below this fraction of tol.
STATIONARY_FRACTION = 1e-2
MAX_K = 1024


def feature_columns(dim: int) -> list[str]:
    """Names of the observation's columns for a ``dim``-D environment."""
    axes = ["x"] if dim == 1 else ["x", "y"]
    return ([f"position_{a}" for a in axes] + [f"centroid_offset_{a}" for a in axes] + ["mass"]
            + [f"gradient_{a}" for a in axes] + list(GLOBAL_COLUMNS))


class _CVTEnvV1(_CVTEnv):
    """Shared machinery of the v1 environments (see their docstrings)."""

    def __init__(
        self,
        k: int = 8,
        density: Any = "linear",
        domain: Any = (0.0, 1.0),
        max_steps: int = 50,
        tol: float = 1e-3,
        action_scale: float = 1.0,
        reward_scale: float = 1.0,
        render_mode: str | None = None,
        reference_energy: float | None = None,
    ) -> None:
        check_int("k", k, min_value=1, max_value=MAX_K)
        super().__init__(k, density, domain, max_steps, tol, action_scale, reward_scale, render_mode)
        if self.tol >= 1.0:
            raise ValueError(f"tol={tol!r} is not allowed; expected a number > 0 and < 1")
        d = self._dim
        self.n_features = 3 * d + 1 + len(GLOBAL_COLUMNS)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.k, d), dtype=np.float32)
        low = np.concatenate([np.zeros(d), np.full(d, -OFFSET_CLIP), [0.0], np.full(d, -GRAD_CLIP),
                              np.zeros(len(GLOBAL_COLUMNS))])
        high = np.concatenate([np.ones(d), np.full(d, OFFSET_CLIP), [float(self.k)], np.full(d, GRAD_CLIP),
                               np.full(len(GLOBAL_COLUMNS), RATIO_CLIP)])
        self.observation_space = spaces.Box(np.tile(low, (self.k, 1)).astype(np.float32),
                                            np.tile(high, (self.k, 1)).astype(np.float32), dtype=np.float32)
        #: Reference CVT energy E* (see quant_envs.cvt.reference), or the one given.
        if reference_energy is None:
            self.reference_energy = cached_reference_energy(self.problem, density)
        else:
            self.reference_energy = check_float("reference_energy", reference_energy, min_value=0.0, min_inclusive=False)
        self._mass_total = 1.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        assert self._ev is not None
        self._mass_total = max(float(np.sum(self._ev.masses)), np.finfo(float).tiny)
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        self._check_can_step()
        a = check_finite_array("action", action, self.action_space.shape, "finite numbers in [-1, 1]")
        if self._dim == 1:
            a = a[:, 0]
        move = self.action_scale * self.cell_size * np.clip(a, -1.0, 1.0)
        assert self._z is not None and self._ev is not None
        self._z = self.problem.domain.clip(self._z + move)
        before = self._ev.energy
        self._ev = self.problem.evaluate(self._z)
        self._steps += 1
        reward = self.reward_scale * _log_ratio(before, self._ev.energy)
        converged = self.converged
        terminated = converged is not None
        truncated = (not terminated) and self._steps >= self.max_steps
        self._done = terminated or truncated
        info = self._info()
        info["converged"] = converged
        return self._observation(), float(reward), terminated, truncated, info

    @property
    def converged(self) -> str | None:
        """``"reference"`` if E / E* - 1 <= tol, ``"stationary"`` at another CVT, else None."""
        assert self._ev is not None
        if self._ev.energy <= (1.0 + self.tol) * self.reference_energy:
            return "reference"
        off = self._ev.centroids - self._z
        lloyd_decrease = float(np.sum(self._ev.masses * (off**2 if self._dim == 1 else np.sum(off**2, axis=1))))
        if lloyd_decrease <= STATIONARY_FRACTION * self.tol * self._ev.energy:
            return "stationary"
        return None

    def _observation(self) -> NDArray[np.float32]:
        assert self._z is not None and self._ev is not None
        z, ev, d, h = self._z, self._ev, self._dim, self.cell_size
        pos = self.problem.domain.to_unit(z).reshape(self.k, d)
        off = ((ev.centroids - z) / h).reshape(self.k, d)
        mean_mass = self._mass_total / self.k
        mass = ev.masses / mean_mass
        grad = (ev.gradient / (2.0 * mean_mass * h)).reshape(self.k, d)
        g = float(np.linalg.norm(ev.gradient))
        glob = np.array([ev.energy / self.reference_energy, ev.energy / self._e0, g / self._g0,
                         self._g0 / (2.0 * self._mass_total * h)])
        obs = np.concatenate([pos, off, mass[:, None], grad, np.tile(glob, (self.k, 1))], axis=1)
        return np.clip(obs, self.observation_space.low, self.observation_space.high).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        info = super()._info()
        assert self._ev is not None
        info["energy_ratio_reference"] = self._ev.energy / self.reference_energy
        info["reference_energy"] = self.reference_energy
        return info


def _log_ratio(before: float, after: float) -> float:
    tiny = np.finfo(float).tiny
    return math.log(max(before, tiny)) - math.log(max(after, tiny))


_DOC_V1 = """
    ## Action Space

    ``Box(-1, 1, shape=(k, {d}), float32)``: row i is the move of generator i in units of
    ``action_scale`` x the mean cell size h = (|domain| / k)^(1/{d}). Actions are clipped to
    [-1, 1]; moved generators are projected back onto the domain (nearest point). Lloyd's
    method is the row-wise rule ``action_i = centroid_offset_i / action_scale``.

    ## Observation Space

    ``Box(shape=(k, {nf}), float32)``: row i describes generator i (rows keep the generators'
    identity), so one function applied to every row is a permutation-equivariant policy
    (:class:`agents.cvt_policy.PerGeneratorPolicy`). Columns (:func:`feature_columns`):

    * ``position`` ({d}): unit coordinates of the domain's bounding box, in [0, 1];
    * ``centroid_offset`` ({d}): (c_i - z_i) / h, clipped to [-4, 4] (Lloyd's move in units of h);
    * ``mass``: m_i / (M / k) with M the total mass, in [0, k];
    * ``gradient`` ({d}): dE/dz_i / (2 (M / k) h), clipped to [-16, 16];
    * four global scale terms, the same in every row, each clipped to [0, 100]: E / E* (E* the
      reference CVT energy), E / E0 and ||g|| / g0 (E0, g0 the energy and gradient norm at
      reset, which v0 used as hidden scales), and g0 / (2 M h).

    ## Rewards

    ``reward_scale * log(E(z_(t-1)) / E(z_t))``: the same size at every energy scale; the
    undiscounted return is ``reward_scale * log(E0 / E_T)``. What a random policy, PPO with
    :mod:`agents.cvt_policy`, Lloyd's rule and L-BFGS reach: ``benchmarks/learnability_cvt.py``.

    ## Starting State

    k generators drawn uniformly from the domain with the environment's seeded generator;
    ``reset(options={{"generators": z}})`` starts from given generators (shape ({shape})).

    ## Episode End

    Terminated when converged: E / E* - 1 <= ``tol`` (default 1e-3), with E* the reference CVT
    energy (:mod:`quant_envs.cvt.reference`: the best of 8 seeded Lloyd + Newton runs), or at
    another CVT (a local minimum, which exist in 2-D and for the ``gaussian`` density): Lloyd's
    guaranteed decrease sum_i m_i |z_i - c_i|^2 <= 0.01 tol E. ``info["converged"]`` says which
    (``"reference"``, ``"stationary"`` or None). Truncated after ``max_steps`` (default 50)
    steps. After the end, ``step`` raises until ``reset``.
    Under ``gym.make`` the spec's ``max_episode_steps`` is this horizon (50): ``max_steps=N`` or
    ``max_episode_steps=N`` (or both, equal) sets it to N, and the episode truncates once, at step N.

    ## Arguments

    * ``k`` (default 8): number of generators, 1 ... 1024.
    * ``density`` (default ``"linear"``): ``"uniform"``, ``"linear"``, ``"exponential"``,
      ``"gaussian"`` or a vectorised callable rho(x) (E* is then computed per environment).
    * ``domain``: {domain_doc}
    * ``max_steps`` (50), ``tol`` (1e-3, in (0, 1)): episode end, above.
    * ``action_scale`` (1.0): the largest move per step in mean cell sizes.
    * ``reward_scale`` (1.0): multiplies every reward.
    * ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"``.
    * ``reference_energy`` (None): E* if known (skips its computation, which takes about a
      second for 2-D named densities at k = 8 and is cached per process; needed for speed with
      a callable density).

    Every argument is checked by type and range (a string is never a number). ``info`` carries
    ``energy``, ``energy_ratio`` (E / E0), ``energy_ratio_reference`` (E / E*),
    ``reference_energy``, ``grad_norm``, ``rel_grad_norm``, ``step`` and, after a step,
    ``converged``.

    ## Version History

    * v1: per-generator (k, f) observation with the scale terms E / E*, E / E0, g / g0, g0;
      (k, d) action with ``action_scale`` 1; log-ratio reward; termination at E / E* - 1 <= tol
      (or another CVT), ``max_steps`` 50 (also the spec's ``max_episode_steps``); ``step`` after the
      end raises.
    * v0: flat observation (position, centroid offset, mass per generator), reward relative to
      E0, termination at ||g|| <= 0.01 g0 (which stopped at E / E* - 1 of up to 4.8 %).
"""

class CVT1DEnvV1(_CVTEnvV1):
    _dim = 1

    def __init__(self, k: int = 8, density: Any = "linear", domain: Any = (0.0, 1.0), max_steps: int = 50,
                 tol: float = 1e-3, action_scale: float = 1.0, reward_scale: float = 1.0,
                 render_mode: str | None = None, reference_energy: float | None = None) -> None:
        super().__init__(k, density, domain, max_steps, tol, action_scale, reward_scale, render_mode,
                         reference_energy)


class CVT2DEnvV1(_CVTEnvV1):
    _dim = 2

    def __init__(self, k: int = 8, density: Any = "linear", domain: Any = "unit-square", max_steps: int = 50,
                 tol: float = 1e-3, action_scale: float = 1.0, reward_scale: float = 1.0,
                 render_mode: str | None = None, reference_energy: float | None = None) -> None:
        super().__init__(k, density, domain, max_steps, tol, action_scale, reward_scale, render_mode,
                         reference_energy)


CVT1DEnvV1.__doc__ = """Move k generators on an interval to a CVT, one shared rule per generator (1-D quantizer).

    ## Description

    The energy E(z) = sum_i int_{V_i} rho(x) (x - z_i)^2 dx of k generators on an interval is
    the mean squared error of the scalar quantizer with reproduction points z_i; its minimisers
    are centroidal Voronoi tessellations (the Lloyd-Max quantizer). Every step moves all
    generators at once. Observation and action have one row per generator, so a policy can apply
    one rule to every generator (as Lloyd's method does). Solvers: :mod:`baselines.cvt`.
""" + _DOC_V1.format(d=1, nf=8, shape="k,", domain_doc="``(lo, hi)``, default (0, 1).")

CVT2DEnvV1.__doc__ = """Move k generators in a convex 2-D domain to a CVT, one shared rule per generator.

    ## Description

    The energy E(z) = sum_i int_{V_i} rho(x) |x - z_i|^2 dx of k generators in the unit square
    or a convex polygon (cells clipped to the domain) is the distortion of the vector quantizer
    with codebook z; its minimisers are centroidal Voronoi tessellations. Every step moves all
    generators at once; observation and action have one row per generator.
    Solvers: :mod:`baselines.cvt`.
""" + _DOC_V1.format(d=2, nf=11, shape="k, 2",
                     domain_doc="``\"unit-square\"`` (default) or a list of convex-polygon vertices.")

