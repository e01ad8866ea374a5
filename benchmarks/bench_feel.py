"""Quantized FEEL solver benchmark: ``python benchmarks/bench_feel.py``.

1. K = 100 devices: wall time of AO (target <= 1 s on 2 cores), median of 3 runs, beside the
   equal-bandwidth baseline and one min-max bandwidth split measured in the same run.
2. Small K: AO's wall time and total training time beside exhaustive brute force (every integer
   level 1..max_levels, each with its optimal bandwidth), as ratios.
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import median_time
from threadpoolctl import threadpool_limits

from baselines.feel import solve
from quant_envs.feel import make_scenario, min_max_bandwidth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", type=float, default=1.0, help="seconds allowed for K = 100 (default 1)")
    args = parser.parse_args()
    threadpool_limits(limits=2)

    print("## K = 100 devices")
    print("| scenario | AO wall (s) | AO / target | equal-bandwidth wall (s) | one min-max split (ms) | AO T (s) | equal-bw T (s) |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for seed, bw in ((0, 200e3), (1, 50e3), (2, 1e6)):
        sc = make_scenario(100, seed=seed, total_bandwidth=bw)
        t_ao, ao = median_time(lambda sc=sc: solve(sc, "ao"))
        t_eq, eq = median_time(lambda sc=sc: solve(sc, "equal_bandwidth"))
        t_split, _ = median_time(lambda sc=sc: min_max_bandwidth(sc, np.full(100, 7)), repeats=20)
        worst = max(worst, t_ao)
        print(f"| seed {seed}, B = {bw / 1e3:g} kHz | {t_ao:.3f} | {t_ao / args.target:.2f} | {t_eq:.3f} | {t_split * 1e3:.2f} | {ao.total_time:.4g} | {eq.total_time:.4g} |")
    print(f"\nK = 100: worst AO wall time {worst:.3f} s = {worst / args.target:.2f} x the {args.target:g} s target "
          f"({'met' if worst <= args.target else 'MISSED'})\n")

    print("## Small K: AO beside exhaustive brute force")
    print("| K | max levels | seed | B (kHz) | AO wall (s) | brute-force wall (s) | wall ratio AO/BF | T ratio AO/BF |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for k, smax, seed, bw in ((2, 255, 0, 20e3), (2, 255, 1, 200e3), (2, 255, 3, 2e6), (3, 40, 1, 20e3), (3, 40, 4, 20e3)):
        sc = make_scenario(k, seed=seed, total_bandwidth=bw, max_levels=smax)
        t_ao, ao = median_time(lambda sc=sc: solve(sc, "ao"), repeats=1)
        t_bf, bf = median_time(lambda sc=sc: solve(sc, "brute_force"), repeats=1)
        ratios.append(ao.total_time / bf.total_time)
        print(f"| {k} | {smax} | {seed} | {bw / 1e3:g} | {t_ao:.3f} | {t_bf:.3f} | {t_ao / t_bf:.3f} | {ao.total_time / bf.total_time:.5f} |")
    print(f"\nAO / brute force total time: worst {max(ratios):.5f}, mean {np.mean(ratios):.5f}")


if __name__ == "__main__":
    main()
