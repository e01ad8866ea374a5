"""Gymnasium environments for companding scalar quantizers.

* :class:`SplineCompanderEnv` (``quant_envs/SplineCompander-v0``): move the segment threshold(s)
  of the spline-approximated optimal compander; reward = SQNR gain.
* :class:`ScalarQuantizerEnv` (``quant_envs/ScalarQuantizer-v0``): move the decision thresholds
  of an N-level quantizer whose levels follow as centroids; reward = distortion decrease. The
  Lloyd-Max quantizer is the known optimum and ``info`` carries its value.
* :class:`SplineCompanderV1Env` (``quant_envs/SplineCompander-v1``): as v0, with a smooth penalty
  instead of the 0 dB cliff for non-increasing least-squares splines
  (:mod:`quant_envs.compander.objective`).

All raise after the episode has ended until ``reset`` (as ``MixedPrecision-v0``).

Both use only :mod:`quant_envs.compander`'s model (exact distortion, compressors, spline fit,
Lloyd-Max fixed point); no solver from ``baselines`` is imported.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from quant_envs.base import RENDER_MODES, QuantEnv
from quant_envs.checks import check_bool, check_choice, check_finite_array, check_float, check_int
from quant_envs.compander.compressor import OptimalCompressor
from quant_envs.compander.objective import evaluate_spline
from quant_envs.compander.quantizer import cell_moments, distortion, sqnr_db
from quant_envs.compander.reference import lloyd_max_reference, optimal_compander_reference
from quant_envs.compander.sources import Source, available_sources, get_source
from quant_envs.compander.spline import FITS, equal_segment_thresholds, fit_spline_compressor
from quant_envs.rendering import figure_to_rgb, new_figure

__all__ = ["MAX_SEGMENTS", "ScalarQuantizerEnv", "SplineCompanderEnv", "SplineCompanderV1Env", "max_scalar_levels"]

_RENDER_MODES = RENDER_MODES

#: Most spline segments: at 32 the spline compander is within 1e-5 dB of the optimal compander
#: (Laplacian and Gaussian, N = 32), so more segments only cost time (each step fits L pieces).
MAX_SEGMENTS = 32

#: ScalarQuantizer keeps thresholds this fraction of B apart (see its Action Space).
_SQ_MIN_GAP = 1e-3


def _source(source: Any) -> Source:
    if isinstance(source, Source):
        return source
    if not isinstance(source, str):
        raise TypeError(f"source={source!r} must be a source name (str), got {type(source).__name__}")
    return get_source(check_choice("source", source, available_sources()))


_EpisodeGuard = QuantEnv  # the former private base: the guard is QuantEnv's, shared by every environment


# the optima this module's environments report (kept under their former private names too)
_optimal_compander_reference = optimal_compander_reference
_lloyd_max_reference = lloyd_max_reference


def _lloyd_max_fits(src: Source, levels: int) -> bool:
    """Whether the Lloyd-Max thresholds keep ScalarQuantizer's minimum spacing 1e-3 B."""
    t, y, _ = _lloyd_max_reference(src, levels)
    return bool(np.min(np.diff(t), initial=np.inf) >= _SQ_MIN_GAP * 1.5 * float(np.max(np.abs(y))))


@lru_cache(maxsize=16)
def max_scalar_levels(src: Source) -> int:
    """Largest N for which ScalarQuantizer-v0 can represent the Lloyd-Max optimum (572 for the
    Gaussian, 273 for the Laplacian): beyond it the optimum's closest thresholds are nearer than
    the 1e-3 B the environment keeps, and by N = 2000 the spacing rule alone fixes every
    threshold (every action then scores 0). Bisection on N in [2, 2000]; cached per source."""
    lo, hi = 2, int(round(2.0 / _SQ_MIN_GAP))  # N gaps of 1e-3 B fill [-B, B] at N = 2000
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _lloyd_max_fits(src, mid) else (lo, mid)
    return lo


def _action_array(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``action`` checked by name (finite, exactly ``shape``), clipped to the [-1, 1] box."""
    allowed = f"{shape[0]} finite numbers in [-1, 1]"
    return np.clip(check_finite_array("action", action, shape, allowed), -1.0, 1.0)


def _ordered(x: np.ndarray, lo: float, hi: float, gap: float) -> np.ndarray:
    """Sort, clip into [lo, hi] and keep neighbours at least ``gap`` apart (feasible when
    (len(x) + 1) * gap <= hi - lo)."""
    x = np.sort(np.clip(x, lo, hi))
    k = np.arange(x.size)
    # Forward pass pushes up, backward pass pulls down; both keep the minimum spacing.
    x = np.maximum.accumulate(x - k * gap) + k * gap
    x = np.minimum(x, hi - (x.size - 1 - k) * gap)
    return x


class SplineCompanderEnv(QuantEnv[NDArray[np.float32], np.ndarray]):
    """Optimise the segment threshold(s) of the spline-approximated optimal compander.

    ## Description

    A companding quantizer with ``levels`` = N output levels for a unit-variance ``source``
    (Gaussian or Laplacian) compresses its input with an approximation of the optimal compressor
    c(x) ~ integral f^(1/3) on the support region [-x_max, x_max]: the positive half is cut into
    ``segments`` = L segments by segment thresholds 0 < t_1 < ... < t_{L-1} < x_max, and on each
    segment c is replaced by a polynomial of degree ``degree`` fitted by least squares
    (Velimirovic, Peric, Stankovic & Nikolic, "Optimization of Quantizer's Segment Treshold Using
    Spline Approximations for Optimal Compressor Function", Applied Mathematics 3(10A), 2012).
    The exact SQNR of the resulting quantizer depends on the segment thresholds; the paper picks
    them numerically. Here an agent moves them step by step. x_max is the support region of the
    optimal compander (chosen for its highest SQNR) and stays fixed.

    ## Action Space

    ``Box(-1, 1, shape=(L-1,), float32)``: the change of each segment threshold in units of
    ``step_size * x_max``. After the move the thresholds are sorted, clipped to
    [0.01 x_max, 0.99 x_max] and kept at least 0.01 x_max apart.
    Finite entries outside [-1, 1] are clipped to it; NaN, inf or another shape raise ValueError.

    ## Observation Space

    ``Box(float32)`` of length L + 1:
    * ``obs[0:L-1]``: segment thresholds t_i / x_max, in (0, 1);
    * ``obs[L-1]``: (SQNR - SQNR of the optimal compander at the same N) / 10 dB, clipped to
      [-3, 1] (0 means as good as the optimal compander);
    * ``obs[L]``: fraction of the episode's steps still to go, in [0, 1].

    ## Rewards

    The SQNR gain of the step in dB: SQNR(after) - SQNR(before). An episode's return is the
    SQNR of the final thresholds minus that of the starting ones. With ``fit="least_squares"`` a
    non-increasing spline is no compressor and is charged SQNR 0 dB (the *cliff* rule of
    :func:`quant_envs.compander.objective.evaluate_spline`; ``SplineCompander-v1`` replaces it).

    ## Starting State

    With ``random_start=True`` (default) the thresholds are drawn uniformly (seeded by
    ``reset(seed=...)``) in [0.01, 0.99] x_max, then ordered as after an action; otherwise they
    split [0, x_max] into equal segments (the paper's unoptimised design).

    ## Episode End

    The episode terminates after ``max_steps`` steps (the observation shows the steps left, so
    the horizon is part of the state); there is no other termination and no truncation.
    ``step`` after the end (or before the first ``reset``) raises RuntimeError until ``reset``.

    ## Arguments

    * ``source``: ``"laplacian"`` (default) or ``"gaussian"`` (or another registered source).
    * ``levels``: number of output levels N >= 2 (default 32).
    * ``degree``: spline degree, 1 or 2 (default 2, the paper's).
    * ``segments``: segments L in [2, 32] on [0, x_max] (default 2: one segment threshold); at
      L = 32 the spline is within 1e-5 dB of the optimal compander, so larger L is refused.
    * ``fit``: ``"interpolating"`` (default, the paper's construction) or ``"least_squares"``;
      see :mod:`quant_envs.compander.spline`.
    * ``max_steps``: steps per episode (default 20).
    * ``step_size``: largest threshold move per step as a fraction of x_max (default 0.05).
    * ``random_start``: random (default) or equal-segment starting thresholds.
    * ``render_mode``: ``None``, ``"ansi"`` (a text line) or ``"rgb_array"`` (compressor plot).

    ``info`` holds ``sqnr_db`` (the objective), ``distortion``, ``monotone`` (whether the fitted
    spline is increasing), ``penalty_db``, ``segment_thresholds``, ``x_max``,
    ``optimal_compander_sqnr_db``, ``equal_segments_sqnr_db`` and ``step``.

    What random actions, trained agents and the solver
    (``baselines.compander.spline_compander``) reach: ``benchmarks/bench_learnability.py``
    (the documentation's companding page shows its recorded output).

    ## Version History

    * v0: initial version.
    """

    observation_space: spaces.Box[np.float32]
    action_space: spaces.Box[np.float32]
    _penalty = "cliff"

    def __init__(
        self,
        source: str = "laplacian",
        levels: int = 32,
        degree: int = 2,
        segments: int = 2,
        fit: str = "interpolating",
        max_steps: int = 20,
        step_size: float = 0.05,
        random_start: bool = True,
        render_mode: str | None = None,
    ) -> None:
        self.source = _source(source)
        self.levels = check_int("levels", levels, min_value=2)
        self.degree = check_int("degree", degree, min_value=1, max_value=2)
        self.segments = check_int("segments", segments, min_value=2)
        if self.segments > MAX_SEGMENTS:
            raise ValueError(f"segments={self.segments!r} is not allowed; expected an integer in [2, {MAX_SEGMENTS}] "
                             f"(at {MAX_SEGMENTS} segments the spline is within 1e-5 dB of the optimal compander)")
        self.fit = check_choice("fit", fit, FITS)
        self.max_steps = check_int("max_steps", max_steps, min_value=1)
        self.step_size = check_float("step_size", step_size, min_value=0.0, max_value=1.0, min_inclusive=False)
        self.random_start = check_bool("random_start", random_start)
        self._set_render_mode(render_mode)
        n_free = self.segments - 1
        self._margin = 0.01
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n_free,), dtype=np.float32)
        low = np.concatenate((np.zeros(n_free), [-3.0, 0.0])).astype(np.float32)
        high = np.concatenate((np.ones(n_free), [1.0, 1.0])).astype(np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._x_max: float | None = None  # computed lazily at the first reset
        self._u = np.zeros(n_free)
        self._sqnr = 0.0
        self._steps = 0

    # -- model ---------------------------------------------------------------------------------
    def _reference(self) -> tuple[float, float]:
        return optimal_compander_reference(self.source, self.levels)

    def _sqnr_at(self, u: np.ndarray) -> tuple[float, float]:
        x_max, _ = self._reference()
        target = OptimalCompressor(source=self.source, x_max=x_max)
        ev = evaluate_spline(self.source, target, u * x_max, self.levels, degree=self.degree, fit=self.fit, penalty=self._penalty)
        self._monotone, self._penalty_db = ev.monotone, ev.penalty_db
        return ev.distortion, ev.sqnr_db

    def _order(self, u: np.ndarray) -> np.ndarray:
        return _ordered(u, self._margin, 1.0 - self._margin, self._margin)

    def _obs(self) -> NDArray[np.float32]:
        _, oc = self._reference()
        gap = np.clip((self._sqnr - oc) / 10.0, -3.0, 1.0)
        left = (self.max_steps - self._steps) / self.max_steps
        return np.concatenate((self._u, [gap, left])).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        x_max, oc = self._reference()
        return {
            "sqnr_db": self._sqnr,
            "distortion": self._dist,
            "segment_thresholds": self._u * x_max,
            "x_max": x_max,
            "optimal_compander_sqnr_db": oc,
            "equal_segments_sqnr_db": self._equal_sqnr,
            "monotone": self._monotone,
            "penalty_db": self._penalty_db,
            "step": self._steps,
        }

    # -- gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        x_max, _ = self._reference()
        equal = equal_segment_thresholds(1.0, self.segments)
        if self.random_start:
            u = self.np_random.uniform(self._margin, 1.0 - self._margin, size=self.segments - 1)
        else:
            u = equal
        self._equal_sqnr = self._sqnr_at(equal)[1]
        self._u = self._order(u)
        self._dist, self._sqnr = self._sqnr_at(self._u)
        self._steps = 0
        self._begin_episode()
        return self._obs(), self._info()

    def step(self, action: np.ndarray) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        self._check_can_step()
        a = _action_array(action, self.action_space.shape)
        before = self._sqnr
        self._u = self._order(self._u + self.step_size * a)
        self._dist, self._sqnr = self._sqnr_at(self._u)
        self._steps += 1
        terminated = self._steps >= self.max_steps
        self._done = terminated
        return self._obs(), float(self._sqnr - before), terminated, False, self._info()

    def _render_ansi(self) -> str:
        x_max, oc = self._reference()
        t = ", ".join(f"{v:.4f}" for v in self._u * x_max)
        return f"step {self._steps}/{self.max_steps}: t = [{t}] (x_max = {x_max:.4f}), SQNR {self._sqnr:.4f} dB, optimal compander {oc:.4f} dB\n"

    def _render_rgb_array(self) -> np.ndarray:
        x_max, oc = self._reference()

        target = OptimalCompressor(source=self.source, x_max=x_max)
        spline = fit_spline_compressor(target, self._u * x_max, degree=self.degree, fit=self.fit)
        x = np.linspace(0.0, x_max, 300)
        fig = new_figure(4.0, 3.0, dpi=80)
        ax = fig.subplots()
        ax.plot(x, target(x), label="optimal compressor")
        ax.plot(x, spline(x), "--", label=f"spline, degree {self.degree}")
        for t in self._u * x_max:
            ax.axvline(t, color="gray", lw=0.8)
        ax.set_xlabel("input x [sigma]")
        ax.set_ylabel("c(x) [sigma]")
        ax.set_title(f"SQNR {self._sqnr:.3f} dB", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        frame = figure_to_rgb(fig)
        return frame


class SplineCompanderV1Env(SplineCompanderEnv):
    """SplineCompander with a smooth penalty instead of the 0 dB cliff for non-increasing splines.

    ## Description

    The problem of :class:`SplineCompanderEnv` (``SplineCompander-v0``): move the segment
    thresholds of the spline approximation of the optimal compressor (Velimirovic, Peric,
    Stankovic & Nikolic, Applied Mathematics 3(10A), 2012) to maximise the exact SQNR of the
    N-level compander built on it. Only the score of a threshold set whose least-squares spline
    (``fit="least_squares"``) is not increasing changes: instead of SQNR 0 dB (a drop of about
    23 dB in one step at N = 32), the spline is repaired into an increasing one on the same knots
    and charged 40 dB per unit of slope violation (``penalty="smooth"`` of
    :func:`quant_envs.compander.objective.evaluate_spline`), so the objective is continuous in the
    thresholds and falls off linearly on the infeasible side. With the default
    ``fit="interpolating"`` every spline is increasing and v1 scores exactly as v0.

    ## Action Space

    As v0: ``Box(-1, 1, shape=(L-1,), float32)``, threshold moves in units of
    ``step_size * x_max``; thresholds sorted, clipped to [0.01, 0.99] x_max, 0.01 x_max apart.

    ## Observation Space

    As v0, length L + 1: thresholds / x_max, (objective - optimal compander SQNR) / 10 dB clipped
    to [-3, 1], fraction of steps left.

    ## Rewards

    The gain of the objective in dB per step: SQNR(after) - SQNR(before), where a non-increasing
    spline's SQNR is its repair's minus the penalty; the return is the final SQNR minus the
    starting one. What random actions, trained agents and the solver
    (``baselines.compander.spline_compander``) reach: ``benchmarks/bench_learnability.py``.

    ## Starting State

    As v0: random thresholds (``random_start=True``) or equal segments.

    ## Episode End

    As v0: terminated after ``max_steps`` steps; ``step`` after the end raises RuntimeError
    until ``reset``.

    ## Arguments

    As v0: ``source``, ``levels`` (int >= 2), ``degree`` (1 or 2), ``segments`` (int in
    [2, 32]), ``fit``, ``max_steps`` (int >= 1), ``step_size`` (float in (0, 1]),
    ``random_start`` (bool), ``render_mode``. ``info`` additionally reports ``monotone`` and
    ``penalty_db`` (0 for an increasing spline).

    ## Version History

    * v1: a non-increasing least-squares spline is scored by its monotone repair minus 40 dB
      per unit of slope violation instead of SQNR 0 dB (33% of random threshold sets at degree
      2, L = 4 hit the cliff).
    * v0: initial version.
    """

    _penalty = "smooth"


class ScalarQuantizerEnv(QuantEnv[NDArray[np.float32], np.ndarray]):
    """Move the decision thresholds of an N-level quantizer towards the Lloyd-Max optimum.

    ## Description

    An N-level scalar quantizer for a unit-variance ``source`` (Gaussian or Laplacian) is given
    by its N-1 decision thresholds; every output level is the centroid E[X | cell] of its cell
    (the best level for given thresholds). The agent moves the thresholds; the exact mean squared
    error D (closed-form cell moments) is the objective. The Lloyd-Max quantizer (computed once
    per source and N by Newton-accelerated Lloyd iteration) is the known optimum, so an agent's
    gap to it can be measured exactly: ``info["optimum_distortion"]``, ``info["gap_db"]``.

    ## Action Space

    ``Box(-1, 1, shape=(N-1,), float32)``: the change of each threshold in units of
    ``step_size * B``, where B = 1.5 |y*_N| is 1.5 times the largest Lloyd-Max output level.
    After the move the thresholds are sorted, clipped to [-B, B] and kept at least 0.001 B apart.
    Finite entries outside [-1, 1] are clipped to it; NaN, inf or another shape raise ValueError.

    ## Observation Space

    ``Box(float32)`` of length 3N + 1:
    * ``obs[0:N-1]``: thresholds t_i / B, in [-1, 1];
    * ``obs[N-1:2N-1]``: output levels (centroids) y_i / B, clipped to [-2, 2];
    * ``obs[2N-1:3N-1]``: cell probabilities P_i, in [0, 1];
    * ``obs[3N-1]``: gap to the optimum, 10 log10(D / D_opt) / 10 dB, clipped to [0, 5];
    * ``obs[3N]``: fraction of the episode's steps still to go, in [0, 1].

    ## Rewards

    The decrease of the distortion, (D_before - D_after) / D_opt with ``normalize_reward=True``
    (default, scale free across N and sources), or D_before - D_after otherwise. The return of an
    episode is the total distortion decrease.

    ## Starting State

    The equiprobable quantizer (t_i = F^-1(i / N)) with every threshold shifted by a uniform
    random fraction in [-start_noise / 2, start_noise / 2] of its distance to the next one
    (seeded by ``reset(seed=...)``), then ordered as after an action. ``start_noise=0`` gives the
    deterministic equiprobable start.

    ## Episode End

    The episode terminates after ``max_steps`` steps (the observation shows the steps left);
    there is no other termination and no truncation. ``step`` after the end (or before the first
    ``reset``) raises RuntimeError until ``reset``.

    ## Arguments

    * ``source``: ``"gaussian"`` (default) or ``"laplacian"`` (or another registered source).
    * ``levels``: number of output levels N in [2, N_max] (default 8), N_max = 572 for the
      Gaussian and 273 for the Laplacian (:func:`max_scalar_levels`): beyond it the Lloyd-Max
      optimum's closest thresholds are nearer than the 0.001 B the environment keeps, so the
      optimum could not be reached (and from N = 2000 on the spacing rule fixes every threshold).
    * ``max_steps``: steps per episode (default 50).
    * ``step_size``: largest threshold move per step as a fraction of B (default 0.02).
    * ``start_noise``: random perturbation of the equiprobable start (default 0.5).
    * ``normalize_reward``: divide the reward by D_opt (default ``True``).
    * ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"`` (density with thresholds).

    ``info`` holds ``distortion``, ``sqnr_db``, ``optimum_distortion``, ``optimum_sqnr_db``,
    ``gap_db``, ``thresholds``, ``levels`` and ``step``.

    The normalised return is (D_start - D_end) / D_opt. What random actions and trained agents
    reach against the Lloyd-Max optimum: ``benchmarks/bench_learnability.py``.

    ## Version History

    * v0: initial version.
    """

    observation_space: spaces.Box[np.float32]
    action_space: spaces.Box[np.float32]

    def __init__(
        self,
        source: str = "gaussian",
        levels: int = 8,
        max_steps: int = 50,
        step_size: float = 0.02,
        start_noise: float = 0.5,
        normalize_reward: bool = True,
        render_mode: str | None = None,
    ) -> None:
        self.source = _source(source)
        self.levels = check_int("levels", levels, min_value=2)
        if self.levels >= int(round(2.0 / _SQ_MIN_GAP)) or not _lloyd_max_fits(self.source, self.levels):
            limit = max_scalar_levels(self.source)
            raise ValueError(
                f"levels={self.levels!r} is not allowed for the {type(self.source).name} source; expected an integer in "
                f"[2, {limit}]: beyond {limit} the Lloyd-Max thresholds are closer than the {_SQ_MIN_GAP:g} B spacing "
                "the environment keeps, so its optimum is out of reach"
            )
        self.max_steps = check_int("max_steps", max_steps, min_value=1)
        self.step_size = check_float("step_size", step_size, min_value=0.0, max_value=1.0, min_inclusive=False)
        self.start_noise = check_float("start_noise", start_noise, min_value=0.0, max_value=1.0)
        self.normalize_reward = check_bool("normalize_reward", normalize_reward)
        self._set_render_mode(render_mode)
        n = self.levels
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n - 1,), dtype=np.float32)
        low = np.concatenate((-np.ones(n - 1), -2.0 * np.ones(n), np.zeros(n), [0.0, 0.0])).astype(np.float32)
        high = np.concatenate((np.ones(n - 1), 2.0 * np.ones(n), np.ones(n), [5.0, 1.0])).astype(np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._t = np.zeros(n - 1)
        self._steps = 0

    def _reference(self) -> tuple[np.ndarray, np.ndarray, float]:
        return _lloyd_max_reference(self.source, self.levels)

    @property
    def _bound(self) -> float:
        return 1.5 * float(np.max(np.abs(self._reference()[1])))

    def _order(self, t: np.ndarray) -> np.ndarray:
        b = self._bound
        return _ordered(t, -b, b, _SQ_MIN_GAP * b)

    def _evaluate(self) -> None:
        p, m1, _ = cell_moments(self.source, self._t)
        self._p = p
        self._y = m1 / p
        self._dist = distortion(self.source, self._t, self._y).total

    def _obs(self) -> NDArray[np.float32]:
        b = self._bound
        d_opt = self._reference()[2]
        gap = np.clip(10.0 * np.log10(self._dist / d_opt) / 10.0, 0.0, 5.0)
        left = (self.max_steps - self._steps) / self.max_steps
        parts = (self._t / b, np.clip(self._y / b, -2.0, 2.0), np.clip(self._p, 0.0, 1.0), [gap, left])
        return np.concatenate(parts).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        d_opt = self._reference()[2]
        return {
            "distortion": self._dist,
            "sqnr_db": sqnr_db(self._dist),
            "optimum_distortion": d_opt,
            "optimum_sqnr_db": sqnr_db(d_opt),
            "gap_db": 10.0 * np.log10(self._dist / d_opt),
            "thresholds": self._t.copy(),
            "levels": self._y.copy(),
            "step": self._steps,
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        n = self.levels
        t = self.source.quantile(np.arange(1, n) / n)
        spacing = np.diff(np.concatenate((t, [t[-1] + (t[-1] - t[-2] if n > 2 else 1.0)])))
        t = t + self.start_noise * spacing * self.np_random.uniform(-0.5, 0.5, size=n - 1)
        self._t = self._order(t)
        self._steps = 0
        self._begin_episode()
        self._evaluate()
        return self._obs(), self._info()

    def step(self, action: np.ndarray) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        self._check_can_step()
        a = _action_array(action, self.action_space.shape)
        before = self._dist
        self._t = self._order(self._t + self.step_size * self._bound * a)
        self._evaluate()
        self._steps += 1
        reward = before - self._dist
        if self.normalize_reward:
            reward /= self._reference()[2]
        terminated = self._steps >= self.max_steps
        self._done = terminated
        return self._obs(), float(reward), terminated, False, self._info()

    def _render_ansi(self) -> str:
        d_opt = self._reference()[2]
        shown = ", ".join(f"{v:.3f}" for v in self._t)
        return (
            f"step {self._steps}/{self.max_steps}: t = [{shown}], D = {self._dist:.6g} "
            f"({sqnr_db(self._dist):.3f} dB; Lloyd-Max {sqnr_db(d_opt):.3f} dB)\n"
        )

    def _render_rgb_array(self) -> np.ndarray:
        d_opt = self._reference()[2]

        b = self._bound
        x = np.linspace(-b, b, 400)
        fig = new_figure(4.0, 3.0, dpi=80)
        ax = fig.subplots()
        ax.plot(x, self.source.pdf(x), color="black", lw=1.0)
        for t in self._t:
            ax.axvline(t, color="tab:blue", lw=0.8)
        for t in self._reference()[0]:
            ax.axvline(t, color="tab:green", lw=0.8, ls=":")
        ax.plot(self._y, np.zeros_like(self._y), "o", color="tab:red", ms=3)
        ax.set_xlabel("input x [sigma]")
        ax.set_ylabel("density f(x)")
        ax.set_title(f"{sqnr_db(self._dist):.2f} dB (Lloyd-Max {sqnr_db(d_opt):.2f} dB)", fontsize=9)
        fig.tight_layout()
        frame = figure_to_rgb(fig)
        return frame
