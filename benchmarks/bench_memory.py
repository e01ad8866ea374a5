"""Benchmark memory over long runs: table-environment episodes, live evaluations, many budgets.

Run:  python benchmarks/bench_memory.py  [--episodes 100000] [--evaluations 1000] [--budgets 200]

Target: memory bounded by the caches' documented sizes, not by the run's length. Figures are the
process's resident set (``VmRSS``) and its peak (``ru_maxrss``), each against a reference measured
in the same run after a warm-up (the first 1 % of the episodes, the first 10 evaluations, the first
environment): what a long run adds beyond it is what could grow without bound.

1. ``MixedPrecisionTable-v0`` (digits-cnn table): ``--episodes`` random allowed episodes.
2. ``MixedPrecision-v1`` on the digits-cnn table's shipped float network (nothing to train):
   episodes until ``--evaluations`` policies have been retrained and evaluated live.
3. ``--budgets`` ``MixedPrecision-v1`` environments with a budget fraction each (made, reset,
   closed): the shared problems are an LRU (``problem.SHARED_PROBLEMS``) sharing one task.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time

import gymnasium as gym
import numpy as np
import torch
from _timing import run_timed

import quant_envs  # noqa: F401  (registers the ids)
from quant_envs.mixed_precision import problem as problem_module
from quant_envs.mixed_precision.tables.registry import load_table


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def episode(env: gym.Env, rng: np.random.Generator) -> None:
    env.reset()
    done = False
    while not done:
        allowed = np.flatnonzero(env.unwrapped.action_masks())
        _, _, terminated, truncated, _ = env.step(int(allowed[rng.integers(len(allowed))]))
        done = terminated or truncated


def report(name: str, ref: tuple[float, float], count: int, unit: str) -> None:
    rss, peak = rss_mb(), peak_mb()
    print(f"{name}: after {count} {unit}: RSS {rss:.0f} MB (reference {ref[0]:.0f} MB, {rss - ref[0]:+.1f} MB), "
          f"peak {peak:.0f} MB (reference {ref[1]:.0f} MB, {peak - ref[1]:+.1f} MB)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--evaluations", type=int, default=1000)
    parser.add_argument("--budgets", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)

    env = gym.make("quant_envs/MixedPrecisionTable-v0", table="digits-cnn")
    env.reset(seed=0)
    warm = max(args.episodes // 100, 1)
    start = time.perf_counter()
    for k in range(1, args.episodes + 1):
        episode(env, rng)
        if k == warm:
            ref = (rss_mb(), peak_mb())
        if k in (warm * 10, args.episodes):
            report("table episodes", ref, k, "episodes")
    print(f"  ({(time.perf_counter() - start) / args.episodes * 1e6:.0f} us an episode)")
    env.close()

    net = load_table("digits-cnn").float_state
    env = gym.make("quant_envs/MixedPrecision-v1", task="digits-cnn", task_kwargs={"float_state": net},
                   share_problem=False)
    env.reset(seed=0)
    problem = env.unwrapped.problem
    start = time.perf_counter()
    ref = None
    while problem.num_evaluations < args.evaluations:
        episode(env, rng)
        if ref is None and problem.num_evaluations >= 10:
            ref = (rss_mb(), peak_mb())
    assert ref is not None
    report("live evaluations", ref, problem.num_evaluations, f"evaluations ({problem.num_queries} episodes, "
           f"{len(problem.cache_state()['_cache'])} cached of at most {problem.cache_size})")
    print(f"  ({(time.perf_counter() - start) / problem.num_evaluations:.3f} s an evaluation)")
    env.close()

    for i in range(args.budgets):
        env = gym.make("quant_envs/MixedPrecision-v1", task="digits-cnn", budget_fraction=0.5 + 0.002 * i)
        env.reset(seed=i)
        env.close()
        del env
        if i % 20 == 0:
            gc.collect()
        if i == 0:
            ref = (rss_mb(), peak_mb())
    report("distinct budgets", ref, args.budgets, f"environments ({len(problem_module._SHARED)} problems kept, "
           f"at most {problem_module.SHARED_PROBLEMS})")
    return 0


if __name__ == "__main__":
    run_timed(main)
