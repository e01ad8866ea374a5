"""Gymnasium environments for centroidal Voronoi tessellations.

* :class:`CVT1DEnv` (``quant_envs/CVT1D-v0``): k generators on an interval (a scalar quantizer's
  reproduction points for a density).
* :class:`CVT2DEnv` (``quant_envs/CVT2D-v0``): k generators in the unit square or a convex polygon.

Both only use the model in :mod:`quant_envs.cvt` (cells, energy, gradient); no solver from
``baselines`` is imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from quant_envs.base import RENDER_MODES, QuantEnv
from quant_envs.checks import check_float, check_int
from quant_envs.cvt.domain import Interval
from quant_envs.cvt.problem import CVTEvaluation, CVTProblem
from quant_envs.rendering import figure_to_rgb, new_figure

__all__ = ["CVT1DEnv", "CVT2DEnv"]

_RENDER_MODES = RENDER_MODES

#: Offsets to the centroid are reported in mean cell sizes, clipped to this bound.
OFFSET_CLIP = 4.0


class _CVTEnv(QuantEnv[NDArray[np.float32], np.ndarray]):
    """Shared machinery of the 1-D and 2-D CVT environments (see their docstrings)."""

    observation_space: spaces.Box[np.float32]
    action_space: spaces.Box[np.float32]
    _dim = 1
    #: The argument that is the episode horizon (``max_episode_steps`` of the spec; quant_envs.horizons).
    horizon_argument = "max_steps"

    def __init__(
        self,
        k: int = 8,
        density: Any = "linear",
        domain: Any = (0.0, 1.0),
        max_steps: int = 200,
        tol: float = 1e-2,
        action_scale: float = 0.5,
        reward_scale: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        check_int("k", k, min_value=1)
        self.problem = CVTProblem(k, density=density, domain=domain)
        if self.problem.dim != self._dim:
            raise ValueError(
                f"domain={domain!r} is {self.problem.dim}-D; {type(self).__name__} expects a "
                f"{'(lo, hi) interval' if self._dim == 1 else 'unit-square or convex polygon'}"
            )
        self.k = self.problem.k
        self.max_steps = check_int("max_steps", max_steps, min_value=1)
        self.tol = check_float("tol", tol, min_value=0.0, max_value=1.0, min_inclusive=False)
        self.action_scale = check_float("action_scale", action_scale, min_value=0.0, min_inclusive=False)
        self.reward_scale = check_float("reward_scale", reward_scale, min_value=0.0, min_inclusive=False)
        self._set_render_mode(render_mode)
        d = self._dim
        #: Mean cell size (|domain| / k)^(1/d): the unit of moves and of centroid offsets.
        self.cell_size = (self.problem.domain.size / self.k) ** (1.0 / d)
        shape = (self.k,) if d == 1 else (self.k, 2)
        self.action_space = spaces.Box(-1.0, 1.0, shape=shape, dtype=np.float32)
        low = np.concatenate([np.zeros(d), np.full(d, -OFFSET_CLIP), [0.0]]).astype(np.float32)
        high = np.concatenate([np.ones(d), np.full(d, OFFSET_CLIP), [float(self.k)]]).astype(np.float32)
        self.n_features = 2 * d + 1
        self.observation_space = spaces.Box(np.tile(low, self.k), np.tile(high, self.k), dtype=np.float32)
        self._z: np.ndarray | None = None
        self._ev: CVTEvaluation | None = None
        self._e0 = self._g0 = 1.0
        self._steps = 0

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "generators" in options:
            z = self.problem.domain.clip(self.problem.check_generators(options["generators"], "generators"))
        else:
            z = self.problem.domain.sample(self.np_random, self.k)
        self._z = np.asarray(z, dtype=float)
        self._ev = self.problem.evaluate(self._z)
        self._e0 = self._ev.energy
        self._g0 = max(float(np.linalg.norm(self._ev.gradient)), np.finfo(float).tiny)
        self._steps = 0
        self._begin_episode()
        return self._observation(), self._info()

    def step(self, action: np.ndarray) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        self._check_can_step()
        assert self._z is not None and self._ev is not None  # checked above
        a = np.asarray(action, dtype=float)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action has shape {a.shape}; expected {self.action_space.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("action contains NaN or infinite values; expected finite numbers in [-1, 1]")
        move = self.action_scale * self.cell_size * np.clip(a, -1.0, 1.0)
        self._z = self.problem.domain.clip(self._z + move)
        before = self._ev.energy
        self._ev = self.problem.evaluate(self._z)
        self._steps += 1
        reward = self.reward_scale * (before - self._ev.energy) / self._e0
        terminated = self.rel_grad_norm <= self.tol
        truncated = (not terminated) and self._steps >= self.max_steps
        self._done = terminated or truncated
        return self._observation(), float(reward), bool(terminated), bool(truncated), self._info()

    def render(self) -> str | np.ndarray | None:
        if self._z is None and self.render_mode is not None:
            return None  # nothing to show before the first reset
        return super().render()

    # ------------------------------------------------------------------ helpers
    @property
    def generators(self) -> np.ndarray:
        """Current generator positions (a copy)."""
        if self._z is None:
            raise RuntimeError("call reset() first")
        return self._z.copy()

    @property
    def rel_grad_norm(self) -> float:
        """||grad E(z_t)|| / ||grad E(z_0)||."""
        assert self._ev is not None
        return float(np.linalg.norm(self._ev.gradient)) / self._g0

    def _observation(self) -> NDArray[np.float32]:
        assert self._z is not None and self._ev is not None
        z, ev = self._z, self._ev
        pos = self.problem.domain.to_unit(z)
        off = (ev.centroids - z) / self.cell_size
        mass = ev.masses * self.k / max(float(np.sum(ev.masses)), np.finfo(float).tiny)
        if self._dim == 1:
            pos, off = pos[:, None], off[:, None]
        obs = np.concatenate([pos, off, mass[:, None]], axis=1).ravel()
        return np.clip(obs, self.observation_space.low, self.observation_space.high).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        assert self._ev is not None
        return {
            "energy": self._ev.energy,
            "energy_ratio": self._ev.energy / self._e0,
            "grad_norm": float(np.linalg.norm(self._ev.gradient)),
            "rel_grad_norm": self.rel_grad_norm,
            "step": self._steps,
        }

    def _render_ansi(self) -> str:
        assert self._z is not None and self._ev is not None
        head = (
            f"step {self._steps}: E = {self._ev.energy:.6e} (E/E0 = {self._ev.energy / self._e0:.4f}), "
            f"|grad|/|grad0| = {self.rel_grad_norm:.3e}"
        )
        if self._dim == 1:
            width = 64
            line = [" "] * width
            for u in self.problem.domain.to_unit(self._z):
                line[min(width - 1, int(u * width))] = "|"
            return head + "\n[" + "".join(line) + "]"
        return head

    def _render_rgb_array(self) -> np.ndarray:
        assert self._z is not None and self._ev is not None
        fig = new_figure(4.8, 4.8 if self._dim == 2 else 2.4)
        ax = fig.add_subplot(1, 1, 1)
        if self._dim == 1:
            assert isinstance(self.problem.domain, Interval)
            lo, hi = self.problem.domain.lo, self.problem.domain.hi
            x = np.linspace(lo, hi, 400)
            ax.plot(x, self.problem.density(x), color="0.6", lw=1)
            for b in self.problem.cells(self._z)[1][:-1]:
                ax.axvline(b, color="0.85", lw=0.8)
            ax.plot(self._z, np.zeros_like(self._z), "o", color="C0", ms=4, label="generator")
            ax.plot(self._ev.centroids, np.zeros_like(self._z), "x", color="C3", ms=4, label="centroid")
            ax.set_xlabel("x")
            ax.set_ylabel("density rho(x)")
            ax.legend(loc="upper right", fontsize=7)
        else:
            for poly in self.problem.cell_polygons(self._z):
                if len(poly):
                    closed = np.vstack([poly, poly[:1]])
                    ax.plot(closed[:, 0], closed[:, 1], color="0.5", lw=0.6)
            ax.plot(self._z[:, 0], self._z[:, 1], "o", color="C0", ms=3)
            ax.plot(self._ev.centroids[:, 0], self._ev.centroids[:, 1], "x", color="C3", ms=3)
            ax.set_aspect("equal")
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        ax.set_title(f"step {self._steps}, E/E0 = {self._ev.energy / self._e0:.3f}", fontsize=9)
        fig.tight_layout()
        return figure_to_rgb(fig)


_COMMON_DOC = """
    ## Action Space

    ``Box(-1, 1, shape=({shape}), float32)``: the move of every generator, in units of
    ``action_scale`` x the mean cell size h = (|domain| / k)^(1/{d}). Actions are clipped to
    [-1, 1]; moved generators are projected back onto the domain (nearest point).

    ## Observation Space

    ``Box(shape=(k * {nf},), float32)``: a flat vector that ``obs.reshape(k, {nf})`` turns into
    one row per generator (generators keep their identity and order), with columns:

    * position in unit coordinates of the domain's bounding box, (z - lo) / (hi - lo), in [0, 1]
      ({pos_cols});
    * offset to the centroid of its Voronoi cell, (c_i - z_i) / h, clipped to [-4, 4]
      ({off_cols}); it equals -grad_i E / (2 m_i h), i.e. Lloyd's move in units of h;
    * cell mass relative to the mean, m_i k / sum_j m_j, in [0, k].

    ## Rewards

    The energy decrease of the step relative to the episode's initial energy,
    ``reward_scale * (E(z_(t-1)) - E(z_t)) / E(z_0)``. The undiscounted return is
    ``reward_scale * (1 - E(z_T) / E(z_0))``. An agent with SB3's default MLP learns little from
    this formulation; the learnable one is ``CVT{d}D-v1``.

    ## Starting State

    k generators drawn uniformly from the domain with the environment's seeded generator
    (``reset(seed=...)`` makes the episode reproducible); ``reset(options={{"generators": z}})``
    starts from given generators instead.

    ## Episode End

    Terminated when the gradient norm has fallen to ``tol`` times its initial value,
    ||grad E(z_t)|| <= tol ||grad E(z_0)|| (a near-centroidal tessellation); truncated after
    ``max_steps`` steps. After the end, ``step`` raises until ``reset``.
    Under ``gym.make`` the spec's ``max_episode_steps`` is this horizon (200): ``max_steps=N`` or
    ``max_episode_steps=N`` (or both, equal) sets it to N, and the episode truncates once, at step N.

    ## Arguments

    * ``k`` (default 8): number of generators.
    * ``density`` (default ``"linear"``): ``"uniform"``, ``"linear"``, ``"exponential"``,
      ``"gaussian"`` (probability densities on the domain, see :mod:`quant_envs.cvt.density`)
      or a vectorised callable rho(x).
    * ``domain``: {domain_doc}
    * ``max_steps`` (200), ``tol`` (1e-2): episode end, above.
    * ``action_scale`` (0.5): the largest move per step in mean cell sizes.
    * ``reward_scale`` (1.0): multiplies every reward.
    * ``render_mode``: ``None``, ``"ansi"`` (a text line{ansi_extra}) or ``"rgb_array"``
      (matplotlib, Agg).

    ``info`` carries ``energy``, ``energy_ratio`` (E / E0), ``grad_norm``, ``rel_grad_norm``
    and ``step``.

    ## Version History

    * v0: initial version. Changed later without a new id, as neither alters an episode that
      ends normally: ``step`` after the episode's end raises until ``reset`` (it kept stepping),
      and the spec carries ``max_episode_steps`` = ``max_steps``.
      ``quant_envs/CVT{d}D-v1`` is the learnable formulation.
"""


class CVT1DEnv(_CVTEnv):
    _dim = 1

    def __init__(self, k: int = 8, density: Any = "linear", domain: Any = (0.0, 1.0), max_steps: int = 200,
                 tol: float = 1e-2, action_scale: float = 0.5, reward_scale: float = 1.0,
                 render_mode: str | None = None) -> None:
        super().__init__(k, density, domain, max_steps, tol, action_scale, reward_scale, render_mode)


class CVT2DEnv(_CVTEnv):
    _dim = 2

    def __init__(self, k: int = 8, density: Any = "linear", domain: Any = "unit-square", max_steps: int = 200,
                 tol: float = 1e-2, action_scale: float = 0.5, reward_scale: float = 1.0,
                 render_mode: str | None = None) -> None:
        super().__init__(k, density, domain, max_steps, tol, action_scale, reward_scale, render_mode)


CVT1DEnv.__doc__ = """Place k generators on an interval to minimise the CVT energy (a 1-D quantizer).

    ## Description

    The energy E(z) = sum_i int_{V_i} rho(x) (x - z_i)^2 dx of k generators z_i on an interval,
    with V_i the Voronoi cell of z_i (bounded by midpoints of neighbouring generators), is the
    mean squared error of the scalar quantizer with reproduction points z_i for the density rho.
    Its minimisers are centroidal Voronoi tessellations (z_i = centroid of V_i; the Lloyd-Max
    quantizer). The agent moves all generators at once each step; Lloyd's method is the policy
    "action = offset to the centroid / action_scale" (the observation contains that offset).
    Strong non-RL solvers for comparison are in :mod:`baselines.cvt` (Lloyd, L-BFGS, MG/Opt).
""" + _COMMON_DOC.format(shape="k,", d=1, nf=3, pos_cols="column 0", off_cols="column 1",
                         domain_doc="``(lo, hi)``, default (0, 1).",
                         ansi_extra=" and the generators on a 64-character ruler")

CVT2DEnv.__doc__ = """Place k generators in a convex 2-D domain to minimise the CVT energy.

    ## Description

    The energy E(z) = sum_i int_{V_i} rho(x) |x - z_i|^2 dx of k generators z_i in the unit
    square or a convex polygon, with V_i the Voronoi cell of z_i clipped to the domain, is the
    distortion of the vector quantizer with codebook z for the density rho; its minimisers are
    centroidal Voronoi tessellations (generators at their cells' centroids), hexagonal-like in
    the interior for large k (Gersho's conjecture, proved in 2-D by Fejes Toth). The agent moves
    all generators at once each step. Strong non-RL solvers for comparison are in
    :mod:`baselines.cvt`.
""" + _COMMON_DOC.format(shape="k, 2", d=2, nf=5, pos_cols="columns 0-1", off_cols="columns 2-3",
                         domain_doc="``\"unit-square\"`` (default) or a list of convex-polygon vertices.",
                         ansi_extra="")
