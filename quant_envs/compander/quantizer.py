"""Exact performance of an N-level scalar quantizer on a memoryless source.

A quantizer is given by N-1 finite decision thresholds t_1 < ... < t_{N-1} and N output levels
y_1, ..., y_N: an input in the cell (t_{i-1}, t_i] (with t_0 = -inf, t_N = +inf) is replaced by
y_i. Its mean squared error on a unit-variance source with density f is

    D = sum_i integral_{t_{i-1}}^{t_i} (x - y_i)^2 f(x) dx
      = sum_i (M2_i - 2 y_i M1_i + y_i^2 P_i),

with the cell moments P_i, M1_i, M2_i of :meth:`Source.interval_moments` (closed forms for the
Gaussian and Laplacian sources). Given a support region [-x_max, x_max] the error splits into the
*granular* part (inputs with |x| <= x_max) and the *overload* part (|x| > x_max), the split this
literature reports.

All functions are for the unit-variance design source. A source of variance sigma^2 quantized by
the same (unscaled) quantizer has D(sigma) = sigma^2 D_1(t / sigma, y / sigma), which is how
:func:`sqnr_vs_variance` draws the dynamic-range curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from quant_envs.checks import check_float
from quant_envs.compander.sources import Source, get_source

__all__ = [
    "VARIANCE_DB_LIMIT",
    "Distortion",
    "cell_moments",
    "centroids",
    "check_quantizer",
    "distortion",
    "output_entropy",
    "sqnr_db",
    "sqnr_vs_variance",
]


#: Largest |10 log10(sigma^2)| accepted by :func:`sqnr_vs_variance`, in dB.
VARIANCE_DB_LIMIT = 300.0


@dataclass(frozen=True)
class Distortion:
    """Mean squared error of a quantizer (unit-variance source) and its granular/overload split."""

    total: float
    granular: float
    overload: float

    @property
    def sqnr_db(self) -> float:
        return sqnr_db(self.total)


def check_quantizer(thresholds: np.ndarray | list[float], levels: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(thresholds, levels)`` as float arrays.

    ``thresholds`` must hold N-1 finite, strictly increasing values and ``levels`` N finite values.
    """
    try:
        t = np.asarray(thresholds, dtype=float).reshape(-1)
        y = np.asarray(levels, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(
            f"thresholds={thresholds!r} and levels={levels!r} must be sequences of numbers"
        ) from None
    if y.size < 2:
        raise ValueError(f"levels={y.tolist()!r} is not allowed; expected at least 2 output levels")
    if t.size != y.size - 1:
        raise ValueError(
            f"thresholds has {t.size} entries and levels has {y.size}; expected N-1 thresholds for N levels"
        )
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(y))):
        raise ValueError("thresholds and levels must be finite (the outer cells extend to +-inf implicitly)")
    if np.any(np.diff(t) <= 0.0):
        raise ValueError(f"thresholds={t.tolist()!r} is not allowed; expected strictly increasing values")
    return t, y


def _edges(thresholds: np.ndarray) -> np.ndarray:
    return np.concatenate(([-math.inf], thresholds, [math.inf]))


def cell_moments(source: str | Source, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probability, first and second moment of every cell: arrays of length N."""
    src = get_source(source)
    e = _edges(np.asarray(thresholds, dtype=float))
    return src.interval_moments(e[:-1], e[1:])


def centroids(source: str | Source, thresholds: np.ndarray) -> np.ndarray:
    """Conditional means E[X | X in cell]: the best output levels for the given thresholds."""
    p, m1, _ = cell_moments(source, thresholds)
    return m1 / p


def _cell_errors(moments: tuple[np.ndarray, np.ndarray, np.ndarray], y: np.ndarray) -> np.ndarray:
    p, m1, m2 = moments
    return m2 - 2.0 * y * m1 + y * y * p


def distortion(
    source: str | Source,
    thresholds: np.ndarray | list[float],
    levels: np.ndarray | list[float],
    *,
    support: float | None = None,
) -> Distortion:
    """Exact mean squared error of the quantizer on the unit-variance ``source``.

    ``support`` is the support-region threshold x_max that separates granular from overload
    error; ``None`` (the default, for quantizers without one such as Lloyd-Max) counts all error
    as granular.
    """
    src = get_source(source)
    t, y = check_quantizer(thresholds, levels)
    e = _edges(t)
    a, b = e[:-1], e[1:]
    if support is None:
        total = float(np.sum(_cell_errors(src.interval_moments(a, b), y)))
        return Distortion(total=total, granular=total, overload=0.0)
    x_max = check_float("support", support, min_value=0.0, min_inclusive=False)
    ga, gb = np.clip(a, -x_max, x_max), np.clip(b, -x_max, x_max)
    granular = float(np.sum(_cell_errors(src.interval_moments(ga, gb), y)))
    hi = _cell_errors(src.interval_moments(np.maximum(a, x_max), np.maximum(b, x_max)), y)
    lo = _cell_errors(src.interval_moments(np.minimum(a, -x_max), np.minimum(b, -x_max)), y)
    overload = float(np.sum(hi) + np.sum(lo))
    return Distortion(total=granular + overload, granular=granular, overload=overload)


def sqnr_db(distortion_value: float, variance: float = 1.0) -> float:
    """Signal-to-quantization-noise ratio 10 log10(sigma^2 / D) in dB."""
    d = check_float("distortion_value", distortion_value, min_value=0.0, min_inclusive=False)
    v = check_float("variance", variance, min_value=0.0, min_inclusive=False)
    return 10.0 * math.log10(v / d)


def output_entropy(source: str | Source, thresholds: np.ndarray | list[float]) -> float:
    """Entropy of the quantizer's output index, -sum P_i log2 P_i, in bits per sample."""
    t = np.asarray(thresholds, dtype=float)
    check_quantizer(t, np.zeros(t.size + 1))
    p, _, _ = cell_moments(source, t)
    p = p[p > 0.0]
    return float(-np.sum(p * np.log2(p)))


def sqnr_vs_variance(
    source: str | Source,
    thresholds: np.ndarray | list[float],
    levels: np.ndarray | list[float],
    variance_db: float | np.ndarray | Sequence[float],
) -> np.ndarray:
    """SQNR in dB of a quantizer designed for unit variance when the input variance is
    ``10^(variance_db / 10)``: the dynamic-range curve of companding quantizers.

    ``variance_db`` is a number or a 1-D sequence of finite values in [-300, 300] dB (beyond
    that the scaled thresholds t / sigma leave the range of floating point); returns one SQNR
    per value."""
    src = get_source(source)
    t, y = check_quantizer(thresholds, levels)
    try:
        vdb = np.asarray(variance_db, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"variance_db={variance_db!r} is not allowed; expected a number or a sequence of numbers (dB)") from None
    if vdb.ndim > 1:
        raise ValueError(f"variance_db has shape {vdb.shape}, which is not allowed; expected a number or a 1-D sequence")
    vdb = vdb.reshape(-1)
    bad = ~np.isfinite(vdb) | (np.abs(vdb) > VARIANCE_DB_LIMIT)
    if np.any(bad):
        raise ValueError(
            f"variance_db={vdb[bad][:5].tolist()} is not allowed; expected finite values in "
            f"[-{VARIANCE_DB_LIMIT:g}, {VARIANCE_DB_LIMIT:g}] dB"
        )
    out = np.empty(vdb.size)
    for i, v in enumerate(vdb):
        sigma = 10.0 ** (v / 20.0)
        # D(sigma) / sigma^2 = D_1(t / sigma, y / sigma): the SQNR is scale free.
        out[i] = sqnr_db(distortion(src, t / sigma, y / sigma).total)
    return out
