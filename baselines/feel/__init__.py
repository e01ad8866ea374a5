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

All return one :class:`FeelSolveResult` (a :class:`baselines.result.SolveResult`). Each method's
options are listed in :data:`SOLVERS` (adding a method is a runner and a line there); any other
option raises :class:`baselines.result.UnknownOptionError`. The objective is always the model's
(:func:`quant_envs.feel.training_time.total_time_unchecked` in the inner loops, the validated
:func:`~quant_envs.feel.training_time.time_breakdown` for the answer); no formula is re-derived here.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from baselines.feel.ao import (
    Counters,
    alternating_optimization,
    best_bandwidth,
    objective,
    solve_ao,
)
from baselines.result import Solver, SolveResult, registered
from quant_envs.checks import check_choice, check_float, check_int
from quant_envs.feel.bandwidth import min_max_bandwidth
from quant_envs.feel.model import FULL_PRECISION
from quant_envs.feel.reference import REFERENCE_LEVEL, equal_bandwidth, reference_levels
from quant_envs.feel.scenario import Scenario
from quant_envs.feel.training_time import time_breakdown, total_time_unchecked

FIXED_PRESETS = {"sign": 1, "8bit": REFERENCE_LEVEL, "full": FULL_PRECISION}


class FeelSolveResult(SolveResult):
    """Answer, objective and work of one solve: a :class:`baselines.result.SolveResult`.

    Core fields and their older names (both work, for reading and writing)::

        x    levels       QSGD levels per device (0 = full precision), int64
        fun  total_time   s, rounds x round_latency
        nit  iterations   AO outer iterations over all starts (brute force: candidates; fixed: 1)
        nfev evaluations  objective evaluations (each with its bandwidth split where optimised)
        success converged whether AO stopped on its own rule (always True for the other methods)

    Extras: ``bandwidth`` (Hz per device, sum <= total_bandwidth), ``rounds`` (N, rounds to the
    target optimality gap, closed form), ``round_latency`` (s, slowest device's computation +
    upload), ``bisections`` (bandwidth bisections run), ``sca_iterations`` (over all level steps),
    ``start_time`` (s, objective at the starting point for AO and equal_bandwidth, else None) and
    ``history`` (tuple, objective after each AO iteration).
    """

    aliases: ClassVar[dict[str, str]] = {
        "levels": "x", "total_time": "fun", "iterations": "nit", "evaluations": "nfev", "converged": "success",
    }
    objective: ClassVar[str] = "total training time (s), minimised"


def _result(scenario: Scenario, method: str, levels, bandwidth, counters: Counters, iterations: int, wall: float,
            message: str, converged: bool = True, start: float | None = None, history=()) -> FeelSolveResult:
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
        converged=bool(converged),  # status 1 otherwise (SolveResult's default): AO's only other way out is its cap
        start_time=start,
        history=tuple(float(h) for h in history),
        message=message,
    )


def _ao_message(converged: bool, max_iter: int, tol: float) -> str:
    if converged:
        return f"converged: an AO iteration gained less than tol={tol:g}"
    return f"did not converge within max_iter={max_iter} AO iterations"


def brute_force_grid(scenario: Scenario, max_combinations: int) -> np.ndarray:
    """Candidate levels per device: all of 1..s_max if (s_max)^K fits, else a geometric integer grid."""
    k, smax = scenario.num_devices, scenario.max_levels
    if smax**k <= max_combinations:
        return np.arange(1, smax + 1)
    per_device = max(2, int(np.floor(max_combinations ** (1.0 / k))))
    grid = np.unique(np.round(np.geomspace(1, smax, per_device)).astype(np.int64))
    return grid


def _brute_force_search(scenario: Scenario, max_combinations: int,
                        chunk: int = 8192) -> tuple[np.ndarray, np.ndarray, int, Counters]:
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
    if best_lv is None:  # every candidate's time is infinite or NaN: nothing to return
        raise ValueError(f"brute_force found no candidate with a finite total time among {total} level vectors")
    bw, _ = best_bandwidth(scenario, best_lv, counters)
    return best_lv, bw, total, counters


def _ao(scenario: Scenario, *, multistart: bool = True, max_iter: int = 30, tol: float = 1e-6) -> FeelSolveResult:
    trace, counters, start, wall = solve_ao(scenario, multistart=multistart, max_iter=max_iter, tol=tol)
    return _result(scenario, "ao", trace.levels, trace.bandwidth, counters, counters.ao_iterations, wall,
                   _ao_message(trace.converged, max_iter, tol), trace.converged, start, trace.history)


def _equal_bandwidth(scenario: Scenario, *, max_iter: int = 30, tol: float = 1e-6) -> FeelSolveResult:
    t0 = time.perf_counter()
    counters = Counters()
    bw, s0 = equal_bandwidth(scenario), reference_levels(scenario)
    start = objective(scenario, s0, bw)
    trace = alternating_optimization(scenario, s0, bw, counters=counters, optimize_bandwidth=False, max_iter=max_iter, tol=tol)
    return _result(scenario, "equal_bandwidth", trace.levels, bw, counters, counters.ao_iterations,
                   time.perf_counter() - t0, _ao_message(trace.converged, max_iter, tol), trace.converged, start,
                   trace.history)


def _fixed_levels(scenario: Scenario, *, fixed: str | int = "8bit") -> FeelSolveResult:
    t0 = time.perf_counter()
    if isinstance(fixed, str):
        s = FIXED_PRESETS[check_choice("fixed", fixed, tuple(FIXED_PRESETS))]
    else:
        s = check_int("fixed", fixed, min_value=1, max_value=scenario.max_levels)
    if s > scenario.max_levels:
        raise ValueError(f"fixed={fixed!r} (s={s}) is not allowed with max_levels={scenario.max_levels}")
    counters = Counters()
    lv = np.full(scenario.num_devices, s, dtype=np.int64)
    bw, _ = best_bandwidth(scenario, lv, counters)
    return _result(scenario, f"fixed_levels[{fixed}]", lv, bw, counters, 1, time.perf_counter() - t0,
                   f"levels fixed at s={s}, bandwidth min-max optimal")


def _brute_force(scenario: Scenario, *, max_combinations: int = 200_000) -> FeelSolveResult:
    t0 = time.perf_counter()
    lv, bw, total, counters = _brute_force_search(scenario, max_combinations)
    return _result(scenario, "brute_force", lv, bw, counters, total, time.perf_counter() - t0,
                   f"best of {total} candidate level vectors, each with its optimal bandwidth")


#: Every method: adding one is a runner above and a line here (defaults in the runner's signature).
SOLVERS: dict[str, Solver] = {
    "ao": Solver(_ao, ("multistart", "max_iter", "tol")),
    "equal_bandwidth": Solver(_equal_bandwidth, ("max_iter", "tol")),
    "fixed_levels": Solver(_fixed_levels, ("fixed",)),
    "brute_force": Solver(_brute_force, ("max_combinations",)),
}
METHODS: tuple[str, ...] = tuple(SOLVERS)


def _check_option_values(options: Mapping[str, Any]) -> dict[str, Any]:
    """The given options' values, checked by name whatever the method (``fixed`` needs the scenario: its runner)."""
    checked = dict(options)
    if "multistart" in checked:
        checked["multistart"] = check_choice("multistart", checked["multistart"], (True, False))
    if "max_iter" in checked:
        checked["max_iter"] = check_int("max_iter", checked["max_iter"], min_value=1)
    if "tol" in checked:
        # AO stops when an iteration gains less than the fraction tol: 0 <= tol < 1.
        checked["tol"] = check_float("tol", checked["tol"], min_value=0.0, max_value=1.0, max_inclusive=False)
    if "max_combinations" in checked:
        checked["max_combinations"] = check_int("max_combinations", checked["max_combinations"], min_value=1)
    return checked


def solve(scenario: Scenario, method: str, **options: Any) -> FeelSolveResult:
    """Minimise the total training time of ``scenario`` with ``method`` (see the module docstring).

    Options (each method takes those :data:`SOLVERS` lists): ``fixed`` picks the level of
    ``"fixed_levels"`` ("sign", "8bit" (default), "full" or an int s in [1, max_levels]);
    ``multistart`` (bool, default True, AO only), ``max_iter`` (int >= 1, default 30) and ``tol``
    (relative gain below which AO stops, 0 <= tol < 1, default 1e-6) tune AO and equal_bandwidth;
    ``max_combinations`` (int >= 1, default 200000) bounds the brute-force grid. Every value is
    checked by name before any work; an option the method does not take raises
    :class:`baselines.result.UnknownOptionError`.
    """
    if not isinstance(scenario, Scenario):
        raise TypeError(f"scenario must be a quant_envs.feel.Scenario, got {type(scenario).__name__}")
    solver = registered(method, SOLVERS)
    checked = _check_option_values(options)
    return solver.run(scenario, **solver.accepted(method, checked))


__all__ = ["FIXED_PRESETS", "METHODS", "SOLVERS", "FeelSolveResult", "brute_force_grid", "solve"]
