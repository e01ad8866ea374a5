"""Timers shared by the benchmarks (each benchmark runs as ``python benchmarks/bench_<name>.py``)."""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any, NoReturn


def best_per_call(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Best (minimum) over ``repeat`` runs of the mean seconds per call over ``number`` calls.

    The minimum is the least disturbed by other processes (the timeit documentation's advice).
    """
    return min(timeit.Timer(fn).repeat(repeat=repeat, number=number)) / number


def median_time(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """Median seconds of ``repeats`` calls of ``fn`` (for calls long enough to time one by one),
    and the last call's result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def run_timed(main: Callable[[], int]) -> NoReturn:
    """Run a benchmark's ``main``, print how long the whole benchmark took, exit with its code."""
    start = time.perf_counter()
    code = main()
    print(f"\n(benchmark took {time.perf_counter() - start:.0f} s)")
    raise SystemExit(code)
