"""The spline compander's objective: exact SQNR of the compander built on a fitted spline.

Written once here and used by ``SplineCompander-v0/v1`` (:mod:`.env`) and by the solver
``baselines.compander.spline_compander``. A least-squares spline (``fit="least_squares"``) need
not be increasing, and then it is no compressor. Two ways to score such a threshold set:

* ``penalty="cliff"`` (the solver's rule and ``SplineCompander-v0``'s): the design is infeasible
  and charged distortion 1, SQNR 0 dB, below any real design. Right for a search that only
  compares candidates; an RL agent sees a jump of about -23 dB from one step to the next.
* ``penalty="smooth"`` (``SplineCompander-v1``): the spline is *repaired* into the nearest
  increasing spline of the same knots (chord slopes raised to at least ``MIN_SLOPE``, values
  rescaled to end at x_max; each segment's curvature clipped to |k| <= slope / h, the limit
  at which the quadratic piece's derivative reaches 0 at one end), its exact SQNR computed, and
  ``SMOOTH_PENALTY_DB`` dB charged per unit of *violation*
  v = sum_j (h_j / x_max) max(0, -min_{segment j} s'(x)): the length-weighted amount by which the
  fitted spline's slope goes negative (the compressor's mean slope is 1). On the boundary of the
  feasible set v = 0 and the repair changes nothing, so the objective is continuous there, and
  it decreases linearly into the infeasible side (at 40 dB per unit v it falls faster than the
  repaired design's SQNR can rise; measured in ``tests/test_compander_objective.py``).

An increasing spline is scored the same by both rules: SQNR of its own compander, no penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quant_envs.checks import check_choice
from quant_envs.compander.compressor import Compressor, compander_mse
from quant_envs.compander.quantizer import sqnr_db
from quant_envs.compander.sources import Source
from quant_envs.compander.spline import SplineCompressor, fit_spline_compressor

__all__ = ["INFEASIBLE_DISTORTION", "PENALTIES", "SMOOTH_PENALTY_DB", "SplineEvaluation", "evaluate_spline", "repair_monotone"]

PENALTIES = ("cliff", "smooth")
#: Distortion charged to a non-increasing spline under the cliff rule: SQNR 0 dB.
INFEASIBLE_DISTORTION = 1.0
#: dB charged per unit of slope violation under the smooth rule.
SMOOTH_PENALTY_DB = 40.0
#: Smallest chord slope a repaired segment keeps (the mean slope of a compressor is 1).
MIN_SLOPE = 1e-6


@dataclass(frozen=True)
class SplineEvaluation:
    """Score of one threshold set: the objective (``sqnr_db``) and how it was reached."""

    distortion: float  # exact MSE of the compander scored (the spline, or its repair); 1 for the cliff
    sqnr_db: float  # the objective: SQNR of that compander minus penalty_db
    monotone: bool  # whether the fitted spline itself is a compressor
    violation: float  # v, 0 for an increasing spline
    penalty_db: float
    spline: SplineCompressor  # the fitted spline (not repaired)


def slope_violation(spline: SplineCompressor) -> float:
    """v = sum_j (h_j / x_max) max(0, -min_j s'): 0 exactly when every piece is non-decreasing."""
    h = np.diff(spline.knots)
    m = np.diff(spline.values) / h
    min_slope = m - np.abs(spline.curvature) * h  # s' is linear on a piece: its minimum is at an end
    return float(np.sum(h * np.maximum(0.0, -min_slope)) / spline.x_max)


def repair_monotone(spline: SplineCompressor) -> SplineCompressor:
    """The increasing spline on the same knots nearest in construction (see the module docstring)."""
    if spline.is_monotone:
        return spline
    h = np.diff(spline.knots)
    m = np.diff(spline.values) / h
    if np.any(m < MIN_SLOPE):
        m = np.maximum(m, MIN_SLOPE)
        rise = np.concatenate(([0.0], np.cumsum(m * h)))
        values = spline.x_max * rise / rise[-1]  # s(0) = 0, s(x_max) = x_max kept
        m = np.diff(values) / h
    else:
        values = spline.values
    # Just inside the limit: at |k| = m / h exactly, s' = 0 at a knot and s^-1 there is 0 / 0.
    limit = (1.0 - 1e-9) * m / h
    curvature = np.clip(spline.curvature, -limit, limit)
    return SplineCompressor(x_max=spline.x_max, knots=spline.knots, values=values, curvature=curvature, degree=spline.degree)


def evaluate_spline(
    source: Source,
    target: Compressor,
    segment_thresholds: np.ndarray,
    levels: int,
    *,
    degree: int = 2,
    fit: str = "interpolating",
    penalty: str = "cliff",
) -> SplineEvaluation:
    """Fit the spline to ``target`` at ``segment_thresholds`` and score its ``levels``-level compander."""
    check_choice("penalty", penalty, PENALTIES)
    spline = fit_spline_compressor(target, segment_thresholds, degree=degree, fit=fit)
    if spline.is_monotone:
        d = compander_mse(source, spline, levels)
        return SplineEvaluation(d, sqnr_db(d), True, 0.0, 0.0, spline)
    if penalty == "cliff":
        return SplineEvaluation(INFEASIBLE_DISTORTION, sqnr_db(INFEASIBLE_DISTORTION), False, slope_violation(spline), float("nan"), spline)
    v = slope_violation(spline)
    d = compander_mse(source, repair_monotone(spline), levels)
    pen = SMOOTH_PENALTY_DB * v
    return SplineEvaluation(d, sqnr_db(d) - pen, False, v, pen, spline)
