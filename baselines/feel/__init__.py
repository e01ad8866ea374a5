"""Solvers for quantized federated edge learning: the paper's AO and the baselines.

``solve(scenario, method)`` with ``method`` in

* ``"ao"``: the alternating optimisation of Liu et al. (SCA for the levels with rounding to
  integers, bisection for the bandwidth), :mod:`baselines.feel.ao`;
* ``"equal_bandwidth"``: B_k = B / K, levels optimised by the same SCA + rounding;
* ``"fixed_levels"``: every device uses ``fixed`` ("sign": s = 1, the coarsest QSGD quantizer,
  sign and a Bernoulli magnitude; "8bit": s = 127, one sign bit and 7 level bits per coordinate;
  "full": unquantized float32; or an int s) with the min-max optimal bandwidth;
* ``"brute_force"``: every level vector on a grid (all integers 1..s_max when the grid has at
  most ``max_combinations`` points, else a geometric grid of integers), each with its optimal
  bandwidth: the ground truth for small K.

All return one :class:`FeelSolveResult`. The objective is always the model's
(:func:`quant_envs.feel.training_time.total_time_unchecked` in the inner loops, the validated
:func:`~quant_envs.feel.training_time.time_breakdown` for the answer); no formula is re-derived here.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from baselines.feel.ao import (
    Counters,
    alternating_optimization,
    best_bandwidth,
    objective,
    solve_ao,
)
from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.feel.bandwidth import min_max_bandwidth
from quant_envs.feel.model import FULL_PRECISION
from quant_envs.feel.reference import REFERENCE_LEVEL, equal_bandwidth, reference_levels
from quant_envs.feel.scenario import Scenario
from quant_envs.feel.training_time import time_breakdown, total_time_unchecked

METHODS = ("ao", "equal_bandwidth", "fixed_levels", "brute_force")
FIXED_PRESETS = {"sign": 1, "8bit": REFERENCE_LEVEL, "full": FULL_PRECISION}


@dataclass(frozen=True)
class FeelSolveResult:
    """Answer, objective and work of one solve (in the spirit of scipy's OptimizeResult)."""

    method: str
    levels: np.ndarray  # QSGD levels per device (0 = full precision)
    bandwidth: np.ndarray  # Hz per device, sum <= total_bandwidth
    rounds: float  # N, rounds to the target optimality gap (closed form)
    round_latency: float  # s, slowest device's computation + upload
    total_time: float  # s, rounds x round_latency
    iterations: int  # AO outer iterations (brute force: candidates)
    evaluations: int  # objective evaluations (each with its bandwidth split where optimised)
    bisections: int  # bandwidth bisections run
    sca_iterations: int  # SCA iterations over all level steps
    wall_time_s: float
    converged: bool
    start_time: float | None = None  # s, objective at the starting point (AO, equal_bandwidth)
    history: tuple[float, ...] = field(default_factory=tuple)  # objective after each AO iteration
    message: str = ""


def _result(scenario: Scenario, method: str, levels, bandwidth, counters: Counters, iterations: int, wall: float,
            converged: bool = True, start: float | None = None, history=(), message: str = "") -> FeelSolveResult:
    tb = time_breakdown(scenario, levels, bandwidth)  # validates: sum B_k <= B, levels in range
    return FeelSolveResult(
        method=method,
        levels=np.asarray(levels, dtype=np.int64),
        bandwidth=np.asarray(bandwidth, dtype=np.float64),
        rounds=tb.rounds,
        round_latency=tb.round_latency,
        total_time=tb.total_time,
        iterations=iterations,
        evaluations=counters.evaluations,
        bisections=counters.bisections,
        sca_iterations=counters.sca_iterations,
        wall_time_s=wall,
        converged=converged,
        start_time=start,
        history=tuple(float(h) for h in history),
        message=message,
    )


def brute_force_grid(scenario: Scenario, max_combinations: int) -> np.ndarray:
    """Candidate levels per device: all of 1..s_max if (s_max)^K fits, else a geometric integer grid."""
    k, smax = scenario.num_devices, scenario.max_levels
    if smax**k <= max_combinations:
        return np.arange(1, smax + 1)
    per_device = max(2, int(np.floor(max_combinations ** (1.0 / k))))
    grid = np.unique(np.round(np.geomspace(1, smax, per_device)).astype(np.int64))
    return grid


def _brute_force(scenario: Scenario, max_combinations: int, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray, int, Counters]:
    grid = brute_force_grid(scenario, max_combinations)
    k = scenario.num_devices
    if len(grid) ** k > max_combinations * 4:
        raise ValueError(
            f"brute_force with num_devices={k} needs {len(grid)}^{k} candidates; expected at most "
            f"{max_combinations * 4} (raise max_combinations or use fewer devices)"
        )
    counters = Counters()
    best_t, best_lv = np.inf, None
    combos = itertools.product(grid, repeat=k)
    total = 0
    while True:
        block = np.array(list(itertools.islice(combos, chunk)), dtype=np.int64)
        if len(block) == 0:
            break
        split = min_max_bandwidth(scenario, block, sections=1)  # batched: plain bisection does least work
        t = total_time_unchecked(scenario, block, round_latency=split.latency)
        i = int(np.argmin(t))
        counters.bisections += len(block)
        counters.evaluations += len(block)
        total += len(block)
        if t[i] < best_t:
            best_t, best_lv = float(t[i]), block[i]
    bw, _ = best_bandwidth(scenario, best_lv, counters)
    return best_lv, bw, total, counters


def solve(
    scenario: Scenario,
    method: str,
    *,
    fixed: str | int = "8bit",
    multistart: bool = True,
    max_iter: int = 30,
    tol: float = 1e-6,
    max_combinations: int = 200_000,
) -> FeelSolveResult:
    """Minimise the total training time of ``scenario`` with ``method`` (see the module docstring).

    ``fixed`` picks the level of ``"fixed_levels"`` ("sign", "8bit", "full" or an int s in
    [1, max_levels]); ``multistart`` (bool), ``max_iter`` (int >= 1) and ``tol`` (relative gain
    below which AO stops, 0 <= tol < 1) tune AO; ``max_combinations`` (int >= 1) bounds the
    brute-force grid. These four are checked before any work, whatever the method.
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a quant_envs.feel.Scenario, got {type(scenario).__name__}")
    check_choice("method", method, METHODS)
    multistart = check_choice("multistart", multistart, (True, False))
    max_iter = check_int("max_iter", max_iter, min_value=1)
    # AO stops when an iteration gains less than the fraction tol: 0 <= tol < 1.
    tol = check_float("tol", tol, min_value=0.0, max_value=1.0, max_inclusive=False)
    max_combinations = check_int("max_combinations", max_combinations, min_value=1)
    k = scenario.num_devices
    t0 = time.perf_counter()

    if method == "ao":
        trace, counters, start, wall = solve_ao(scenario, multistart=multistart, max_iter=max_iter, tol=tol)
        return _result(scenario, method, trace.levels, trace.bandwidth, counters, counters.ao_iterations, wall,
                       trace.converged, start, trace.history)

    if method == "equal_bandwidth":
        counters = Counters()
        bw, s0 = equal_bandwidth(scenario), reference_levels(scenario)
        start = objective(scenario, s0, bw)
        trace = alternating_optimization(scenario, s0, bw, counters=counters, optimize_bandwidth=False, max_iter=max_iter, tol=tol)
        return _result(scenario, method, trace.levels, bw, counters, counters.ao_iterations, time.perf_counter() - t0,
                       trace.converged, start, trace.history)

    if method == "fixed_levels":
        if isinstance(fixed, str):
            s = FIXED_PRESETS[check_choice("fixed", fixed, tuple(FIXED_PRESETS))]
        else:
            s = check_int("fixed", fixed, min_value=1, max_value=scenario.max_levels)
        if s > scenario.max_levels:
            raise ValueError(f"fixed={fixed!r} (s={s}) is not allowed with max_levels={scenario.max_levels}")
        counters = Counters()
        lv = np.full(k, s, dtype=np.int64)
        bw, _ = best_bandwidth(scenario, lv, counters)
        return _result(scenario, f"fixed_levels[{fixed}]", lv, bw, counters, 1, time.perf_counter() - t0)

    lv, bw, total, counters = _brute_force(scenario, max_combinations)
    return _result(scenario, method, lv, bw, counters, total, time.perf_counter() - t0)


__all__ = ["FIXED_PRESETS", "METHODS", "FeelSolveResult", "brute_force_grid", "solve"]
