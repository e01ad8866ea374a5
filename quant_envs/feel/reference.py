"""FEEL's reference allocation: equal bandwidth and 8-bit QSGD levels on every device.

It is the paper's starting point for the alternating optimisation and the yardstick every FEEL
environment normalises its reward by (T / T_ref), so it is written here once and imported by
:mod:`quant_envs.feel.env` and :mod:`baselines.feel` alike.
"""

from __future__ import annotations

import numpy as np

from quant_envs.feel.scenario import Scenario
from quant_envs.feel.training_time import device_latency, time_breakdown

#: 8-bit QSGD: one sign bit and log2(127 + 1) = 7 level bits per coordinate.
REFERENCE_LEVEL = 127

__all__ = ["REFERENCE_LEVEL", "equal_bandwidth", "reference_levels", "reference_round_latency", "reference_time"]


def reference_levels(scenario: Scenario) -> np.ndarray:
    """s_k = 127 on every device (or ``max_levels`` when that is smaller)."""
    return np.full(scenario.num_devices, min(REFERENCE_LEVEL, scenario.max_levels), dtype=np.int64)


def equal_bandwidth(scenario: Scenario) -> np.ndarray:
    """B_k = B / K in Hz."""
    return np.full(scenario.num_devices, scenario.total_bandwidth / scenario.num_devices)


def reference_round_latency(scenario: Scenario) -> float:
    """Seconds of one round at the reference allocation (the slowest device's latency)."""
    return float(np.max(device_latency(scenario, reference_levels(scenario), equal_bandwidth(scenario))))


def reference_time(scenario: Scenario) -> float:
    """Total training time T_ref in seconds of the reference allocation (the model's objective)."""
    return time_breakdown(scenario, reference_levels(scenario), equal_bandwidth(scenario)).total_time
