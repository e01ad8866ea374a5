"""Per-round latency, rounds and total training time of a scenario (the model's objective).

``total_time(scenario, levels, bandwidth)`` = N(levels) x max_k (t_k^cmp + S(s_k) / r_k(B_k)); the
formulas are in :mod:`quant_envs.feel.model`. Inputs are validated: a bandwidth split that
breaks sum_k B_k <= B or a level outside {0 (full precision)} U [1, max_levels] is an error.
:func:`total_time_unchecked` is the same objective without validation, for solvers' inner loops
(the one place T = N x tau is written; :func:`total_time` and every solver use it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quant_envs.feel.model import FULL_PRECISION, bits_per_upload, uplink_rate
from quant_envs.feel.scenario import Scenario

#: Relative slack on sum_k B_k <= B for floating-point round-off.
BANDWIDTH_RTOL = 1e-9


def check_levels(scenario: Scenario, levels, *, name: str = "levels", allow_full_precision: bool = True) -> np.ndarray:
    """Return ``levels`` as an int64 array of shape [K] with values in range, or raise ValueError."""
    a = np.asarray(levels)
    k = scenario.num_devices
    if a.shape != (k,):
        raise ValueError(f"{name} must have shape ({k},) (one level per device), got {a.shape}")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{name} must hold integers (QSGD levels), got {a}")
    elif a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {a.dtype}")
    a = a.astype(np.int64)
    lo = FULL_PRECISION if allow_full_precision else 1
    bad = (a < lo) | (a > scenario.max_levels)
    if allow_full_precision:
        bad &= a != FULL_PRECISION
    if np.any(bad):
        allowed = f"integers in [1, {scenario.max_levels}]" + (" or 0 (full precision)" if allow_full_precision else "")
        raise ValueError(f"{name}={a[bad][:5].tolist()} (devices {np.flatnonzero(bad)[:5].tolist()}) is not allowed; expected {allowed}")
    return a


def check_bandwidth(scenario: Scenario, bandwidth, *, name: str = "bandwidth") -> np.ndarray:
    """Return ``bandwidth`` (Hz per device) as float64 [K] if positive and within the total, else raise."""
    b = np.asarray(bandwidth, dtype=np.float64)
    k = scenario.num_devices
    if b.shape != (k,):
        raise ValueError(f"{name} must have shape ({k},) (Hz per device), got {b.shape}")
    if not np.all(np.isfinite(b)) or np.any(b <= 0):
        raise ValueError(f"{name} must hold finite positive bandwidths in Hz, got min {b.min() if b.size else None!r}")
    total = float(b.sum())
    if total > scenario.total_bandwidth * (1.0 + BANDWIDTH_RTOL):
        raise ValueError(
            f"{name} sums to {total:.6g} Hz, which is not allowed; expected sum <= total_bandwidth = {scenario.total_bandwidth:.6g} Hz"
        )
    return b


def upload_time(scenario: Scenario, levels: np.ndarray, bandwidth: np.ndarray) -> np.ndarray:
    """t_k^com = S(s_k) / r_k(B_k) in seconds (no validation; broadcasts over leading axes)."""
    return bits_per_upload(levels, scenario.model_dim) / uplink_rate(bandwidth, scenario.snr_density)


def device_latency(scenario: Scenario, levels: np.ndarray, bandwidth: np.ndarray) -> np.ndarray:
    """t_k^cmp + t_k^com for every device (no validation; broadcasts over leading axes)."""
    return scenario.compute_time + upload_time(scenario, levels, bandwidth)


def quantization_noise(scenario: Scenario, levels: np.ndarray) -> np.ndarray:
    """Q = sum_k p_k^2 G_k^2 q(s_k), the variance term of the bound (over the last axis)."""
    q = scenario.convergence.variance_factor(levels, scenario.model_dim)
    return np.sum(scenario.noise_weights * q, axis=-1)


def rounds(scenario: Scenario, levels) -> float:
    """N(levels) = max(a0, a1 Q) / eps - gamma: rounds to the target optimality gap (real-valued)."""
    levels = check_levels(scenario, levels)
    return float(scenario.convergence.rounds_from_variance(quantization_noise(scenario, levels)))


def total_time_unchecked(scenario: Scenario, levels, bandwidth=None, *, round_latency=None):
    """T = N(levels) x round latency in seconds, without validation (solvers' inner loops).

    Give either ``bandwidth`` (Hz per device; the latency is then the slowest device's
    t_k^cmp + t_k^com) or ``round_latency`` (s, e.g. the common latency of a min-max split).
    ``levels`` may be real-valued and may carry leading batch axes ([..., K]); the result has
    those axes (a numpy scalar for one level vector).
    """
    if (bandwidth is None) == (round_latency is None):
        raise TypeError("total_time_unchecked needs exactly one of bandwidth and round_latency")
    if round_latency is None:
        round_latency = np.max(device_latency(scenario, levels, bandwidth), axis=-1)
    return scenario.convergence.rounds_from_variance(quantization_noise(scenario, levels)) * round_latency


@dataclass(frozen=True)
class TimeBreakdown:
    """Everything the objective is made of, for reports and ``info`` dicts."""

    total_time: float  # s
    rounds: float
    round_latency: float  # s
    compute_time: np.ndarray  # s per device
    upload_time: np.ndarray  # s per device
    quantization_noise: float  # Q


def time_breakdown(scenario: Scenario, levels, bandwidth) -> TimeBreakdown:
    levels = check_levels(scenario, levels)
    bandwidth = check_bandwidth(scenario, bandwidth)
    up = upload_time(scenario, levels, bandwidth)
    latency = float(np.max(scenario.compute_time + up))
    q = float(quantization_noise(scenario, levels))
    n = float(scenario.convergence.rounds_from_variance(q))
    total = float(total_time_unchecked(scenario, levels, round_latency=latency))  # == n x latency
    return TimeBreakdown(total, n, latency, scenario.compute_time, up, q)


def total_time(scenario: Scenario, levels, bandwidth) -> float:
    """Total training time T = N(levels) x round latency, in seconds (the optimisation objective).

    ``levels``: QSGD levels per device (ints in [1, max_levels], or 0 for an unquantized upload);
    ``bandwidth``: Hz per device with sum <= ``scenario.total_bandwidth``.
    """
    levels = check_levels(scenario, levels)
    bandwidth = check_bandwidth(scenario, bandwidth)
    return float(total_time_unchecked(scenario, levels, bandwidth))
