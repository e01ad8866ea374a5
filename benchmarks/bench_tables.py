"""Benchmark the table environments: step time and a 20-seed regret study of every baseline.

Run:  python benchmarks/bench_tables.py  [--tables hawq-resnet18 hawq-resnet50 digits-cnn] [--seeds 20]

Targets, on 2 cores: a table step (terminal reward look-up included) <= 20 us; loading a
scenario (its table read and its default instance's exact optimum found) <= 2 s; the shipped
table data <= 20 MB in all; 20 seeds
x 1000 evaluations of every baseline on one table <= 5 minutes; random search's measured mean
regret inside its 95% CI of the closed-form expectation. Reference measured in the same run:
Gymnasium's CartPole-v1 step (a minimal environment step).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
from _timing import best_per_call

from baselines.mixed_precision.regret import TABLE_METHODS, regret_study
from quant_envs.mixed_precision.tables import DATA_DIR
from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.registry import TABLES, load_table

STEP_TARGET_S = 20e-6
LOAD_TARGET_S = 2.0
DATA_TARGET_BYTES = 20 * 2**20
STUDY_TARGET_S = 300.0


def step_time(table: str, repeat: int) -> float:
    """Seconds per step over whole episodes (the terminal look-up included), following the
    optimum's widths (every prefix of a feasible policy is allowed by the exact mask)."""
    env = MixedPrecisionTableEnv(table=table)
    actions = [int(k) for k in env.problem.optimum.index]

    def episode() -> None:
        env.reset()
        for a in actions:
            env.step(a)

    return best_per_call(episode, 200, repeat) / len(actions)


def load_time(table: str) -> float:
    """Seconds to read ``table`` afresh (the registry's cache cleared) and find its default
    instance's exact optimum: what the first ``gym.make`` of a scenario costs."""
    load_table.cache_clear()
    start = time.perf_counter()
    TableProblem(table)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=sorted(TABLES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--max-evaluations", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--study-tables", nargs="*", default=None,
                        help="tables for the regret study (default: --tables; none: step times only)")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs")

    cartpole = gym.make("CartPole-v1").unwrapped
    cartpole.reset(seed=0)

    def cartpole_step() -> None:
        if cartpole.step(0)[2]:
            cartpole.reset()

    ref = best_per_call(cartpole_step, 5000, args.repeat)
    print(f"CartPole-v1 step (reference): {ref * 1e6:.1f} us")
    for table in args.tables:
        s = step_time(table, args.repeat)
        print(f"{table}: step {s * 1e6:.1f} us = {s / ref:.1f}x CartPole; target {STEP_TARGET_S * 1e6:.0f} us "
              f"-> {s / STEP_TARGET_S:.2f} of target")
    for table in args.tables:
        s = load_time(table)
        print(f"{table}: load {s:.2f} s (read + default optimum, cold) -> {s / LOAD_TARGET_S:.2f} of the "
              f"{LOAD_TARGET_S:.0f} s target")
    shipped = sum(p.stat().st_size for p in DATA_DIR.iterdir() if p.is_file())
    print(f"shipped table data ({DATA_DIR.name}/): {shipped / 2**20:.2f} MB -> "
          f"{shipped / DATA_TARGET_BYTES:.2f} of the {DATA_TARGET_BYTES / 2**20:.0f} MB target")
    for table in args.tables if args.study_tables is None else args.study_tables:
        start = time.perf_counter()
        study = regret_study(TableProblem(table), TABLE_METHODS, range(args.seeds), args.max_evaluations)
        wall = time.perf_counter() - start
        print(f"\n{study.describe()}\n{args.seeds} seeds x {args.max_evaluations} evaluations, "
              f"{len(TABLE_METHODS)} methods: {wall:.1f} s = {wall / STUDY_TARGET_S:.2f} of the "
              f"{STUDY_TARGET_S:.0f} s target")
        print(study.markdown())
        check = study.random_check()
        if check:
            for n, c in check.items():
                print(f"random search @ {n}: measured {c['measured']:.4g}, closed form {c['expected']:.4g} "
                      f"+- {c['half_width']:.3g} (95%): {'inside' if c['inside'] else 'OUTSIDE'}; "
                      f"ratio {c['measured'] / c['expected']:.3f}")


if __name__ == "__main__":
    main()
