"""CVT benchmark: MG/Opt multigrid scaling in k (1-D and 2-D), against Lloyd and L-BFGS.

    python benchmarks/bench_cvt.py            # k = 64 ... 4096, Lloyd capped at 120 s
    python benchmarks/bench_cvt.py --quick    # k = 64 ... 1024, Lloyd capped at 20 s
    python benchmarks/bench_cvt.py --only-2d  # just the 2-D part
    python benchmarks/bench_cvt.py --only-2d --seeds-2d 3  # ... with starting seeds 0, 1, 2
    python benchmarks/bench_cvt.py --only-2d --quick --ks-2d 64,256,1024 --compare-2d 64,256,1024

Targets, printed beside the measured values:

* multigrid V-cycles to a relative gradient norm of 1e-8 roughly independent of k
  (here: largest count at most the smallest + 2);
* multigrid time growing no faster than k^1.15 (least-squares slope of log time on log k; the
  time is the process CPU time, best of ``--repeats`` runs, which other load on a shared machine
  disturbs far less than wall time);
* at k = 1024 in 1-D, Lloyd needs at least 10x the work of multigrid (work = energy/gradient
  evaluations; multigrid's coarse-level evaluations are added in fine-level equivalents).
  Lloyd converges at a rate 1 - O(1/k^2) and cannot reach 1e-8 at k = 1024 in reasonable time,
  so it runs to a cap; the ratio at the cap is a lower bound, and the run's own asymptotic rate
  extrapolates how much more work Lloyd would need (shown as an estimate).

All 1-D runs use density "linear" on [0, 1] and the same seeded uniform starting generators.

2-D targets, unit square, densities "linear" and "gaussian", tol 1e-8, seed 0:

* multigrid V-cycles independent of k: spread (largest - smallest count) <= 2 over k = 64..4096;
* multigrid CPU time at k = 1024 <= 3 s and at k = 4096 <= 15 s (one process, one thread);
* L-BFGS and Lloyd (capped) measured in the same run from the same start, their CPU time printed
  beside multigrid's (ratio L-BFGS / multigrid > 1 means multigrid is faster).

MG/Opt's local rate, apart from the nonconvex phase (:mod:`baselines.cvt.basin`): every k's
computed CVT is perturbed by ``--basin-amplitude`` spacings (default 0.02, smooth plus rough) and
solved back by the V-cycles and by truncated Newton alone (the smoother, no coarse levels); the
V-cycle spread over k is printed beside the same criterion, and a run that ended in another
minimum is flagged.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from baselines.cvt import solve
from baselines.cvt.basin import basin_run
from quant_envs.cvt import CVTProblem


def fit_exponent(k: list[int], t: list[float]) -> float:
    return float(np.polyfit(np.log(k), np.log(t), 1)[0])


def lloyd_extrapolated_work(res) -> float:
    """Lloyd passes to reach the tolerance, extrapolated with the rate of its last half."""
    g = res.grad_norms
    n = len(g) - 1
    half = n // 2
    rate = (g[-1] / g[half]) ** (1.0 / max(n - half, 1))
    if not rate < 1.0:
        return math.inf
    more = math.log(res.tol * g[0] / g[-1]) / math.log(rate)
    return res.work + max(more, 0.0)


def _count(res) -> float:
    """Iterations of a converged run, inf otherwise (so a spread over k cannot hide a failure)."""
    return res.iterations if res.converged else math.inf


def bench_2d(ks: list[int], compare_ks: list[int], lloyd_cap_s: float, lbfgs_cap_s: float,
             basin_amplitude: float = 0.02, seeds: int = 1) -> list[str]:
    """2-D multigrid over k for two densities, L-BFGS and Lloyd beside it; returns table rows.

    Prints one table per density: k, then iterations and CPU seconds of MG/Opt (V-cycles),
    L-BFGS and Lloyd, all from the same seeded start in the same process, and the CPU ratios
    L-BFGS / MG and Lloyd / MG (> 1: multigrid is faster; Lloyd's ratio is a lower bound when it
    hit its cap). With ``seeds`` > 1, multigrid and the in-basin runs repeat for starting seeds
    1 .. seeds - 1 (one line per k: the counts and their median), since the count from a start
    changes with the seed; the spread rows then use the medians (from a start) and the largest
    count (in the basin).
    """
    tol = 1e-8
    table = []
    for density in ("linear", "gaussian"):
        print(f"\nMG/Opt multigrid, 2-D unit square, density '{density}', tol 1e-8 (CPU s = process time)")
        print(f"{'k':>6} | {'MG cycles':>9} {'work':>5} {'coarse':>7} {'CPU s':>7} | {'L-BFGS it':>9} {'CPU s':>7} | "
              f"{'Lloyd it':>8} {'CPU s':>7} {'rel grad':>8} | {'L-BFGS/MG':>9} {'Lloyd/MG':>9} | "
              f"{'basin: MG cycles':>16} {'TN its':>6} {'returned (sp)':>13}")
        cycles, cpu, local_mg, local_tn, left, medians = {}, {}, {}, {}, [], {}
        for k in ks:
            problem = CVTProblem(k, density, "unit-square")
            mg = solve(problem, "multigrid", tol=tol, seed=0)
            cycles[k], cpu[k] = _count(mg), mg.cpu_time_s
            extra = ""
            if k in compare_ks:
                lb = solve(problem, "lbfgs", tol=tol, seed=0, max_time_s=lbfgs_cap_s)
                ll = solve(problem, "lloyd", tol=tol, seed=0, max_iter=10**7, max_time_s=lloyd_cap_s)
                lb_it = f"{lb.iterations}" + ("" if lb.converged else "*")
                ll_it = f"{ll.iterations}" + ("" if ll.converged else "*")
                extra = (f"{lb_it:>9} {lb.cpu_time_s:>7.2f} | {ll_it:>8} {ll.cpu_time_s:>7.2f} {ll.rel_grad_norm:>8.0e} | "
                         f"{lb.cpu_time_s / mg.cpu_time_s:>9.2f} {('>' if not ll.converged else '') + format(ll.cpu_time_s / mg.cpu_time_s, '.2f'):>9}")
                table.append(f"| 2-D {density} k = {k}: CPU time L-BFGS / multigrid | > 1 | "
                             f"{lb.cpu_time_s / mg.cpu_time_s:.2f} ({lb.cpu_time_s:.2f} s / {mg.cpu_time_s:.2f} s"
                             f"{'' if lb.converged else ', L-BFGS capped'}) | {'yes' if lb.cpu_time_s > mg.cpu_time_s else 'no'} |")
            else:
                extra = f"{'-':>9} {'-':>7} | {'-':>8} {'-':>7} {'-':>8} | {'-':>9} {'-':>9}"
            basin = basin_run(problem, mg.generators, basin_amplitude)
            local = (f"{basin.multigrid.iterations:>16} {basin.newton.iterations:>6} {basin.returned:>13.1e}"
                     + ("" if basin.stayed else " (left the basin)"))
            flag = "" if mg.converged else f"  NOT CONVERGED: {mg.message}"
            print(f"{k:>6} | {mg.iterations:>9} {mg.work:>5} {mg.coarse_work:>7.1f} {mg.cpu_time_s:>7.2f} | {extra} | "
                  f"{local}{flag}", flush=True)
            runs, basins = [mg], [basin]
            for seed in range(1, seeds):
                runs.append(solve(problem, "multigrid", tol=tol, seed=seed))
                basins.append(basin_run(problem, runs[-1].generators, basin_amplitude, seed=seed))
            local_mg[k] = max(_count(b.multigrid) for b in basins)
            local_tn[k] = max(_count(b.newton) for b in basins)
            if not all(b.stayed for b in basins):
                left.append(k)
            if seeds > 1:
                counts = [_count(r) for r in runs]
                medians[k] = float(np.median(counts))
                print(f"{'':>6}   seeds 0..{seeds - 1}: V-cycles {counts} (median {medians[k]:g}); in the basin "
                      f"{[_count(b.multigrid) for b in basins]}, truncated Newton alone "
                      f"{[_count(b.newton) for b in basins]}", flush=True)
        if compare_ks:
            print("(* = not converged to tol: CPU cap, or L-BFGS stopped without measurable decrease; Lloyd's ratio is then a lower bound)")
        spread = max(cycles.values()) - min(cycles.values())
        table.append(f"| 2-D {density}: V-cycles over k = {ks[0]}..{ks[-1]} | spread <= 2 | "
                     f"{min(cycles.values())}..{max(cycles.values())} (spread {spread}) | {'yes' if spread <= 2 else 'no'} |")
        if medians:
            spread = max(medians.values()) - min(medians.values())
            table.append(f"| 2-D {density}: median V-cycles of seeds 0..{seeds - 1} over k = {ks[0]}..{ks[-1]} | "
                         f"spread <= 2 | {min(medians.values()):g}..{max(medians.values()):g} (spread {spread:g}) | "
                         f"{'yes' if spread <= 2 else 'no'} |")
        spread = max(local_mg.values()) - min(local_mg.values())
        note = f"; left the basin at k = {', '.join(map(str, left))}" if left else ""
        table.append(f"| 2-D {density}: V-cycles back from a CVT perturbed by {basin_amplitude:g} spacings "
                     f"(MG/Opt's local rate), k = {ks[0]}..{ks[-1]} | spread <= 2 | {min(local_mg.values())}.."
                     f"{max(local_mg.values())} (spread {spread}; truncated Newton alone {min(local_tn.values())}.."
                     f"{max(local_tn.values())} iterations{note}) | {'yes' if spread <= 2 and not left else 'no'} |")
        for k, limit in ((1024, 3.0), (4096, 15.0)):
            if k in cpu:
                table.append(f"| 2-D {density}: multigrid CPU time at k = {k} | <= {limit:g} s | {cpu[k]:.2f} s | "
                             f"{'yes' if cpu[k] <= limit else 'no'} |")
    return table


def _k_list(text: str) -> list[int]:
    try:
        ks = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers >= 1, e.g. 64,256,1024")
    return ks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="k up to 1024 and a 20 s Lloyd cap")
    parser.add_argument("--only-2d", action="store_true", help="only the 2-D part")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats per k (best is kept)")
    parser.add_argument("--ks-2d", type=_k_list, default=None,
                        help="2-D k values, comma-separated (default 64..4096, or 64..1024 with --quick)")
    parser.add_argument("--seeds-2d", type=int, default=1,
                        help="2-D starting seeds for multigrid and the in-basin runs (default 1: seed 0 only)")
    parser.add_argument("--basin-amplitude", type=float, default=0.02,
                        help="perturbation of the computed 2-D CVTs for the local-rate rows, in spacings (default 0.02)")
    parser.add_argument("--compare-2d", type=_k_list, default=None,
                        help="2-D k values where L-BFGS and Lloyd also run (default 1024,4096 or 1024 with --quick)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats} is not allowed; expected an integer >= 1")
    if args.seeds_2d < 1:
        parser.error(f"--seeds-2d={args.seeds_2d} is not allowed; expected an integer >= 1")
    if not 0.0 < args.basin_amplitude < 1.0:
        parser.error(f"--basin-amplitude={args.basin_amplitude} is not allowed; expected a number in (0, 1) (spacings)")
    ks = [64, 128, 256, 512, 1024] if args.quick else [64, 128, 256, 512, 1024, 2048, 4096]
    compare = [1024] if args.quick else [1024, 4096]
    ks_2d = args.ks_2d if args.ks_2d is not None else ks
    compare_2d = args.compare_2d if args.compare_2d is not None else compare
    table_2d = bench_2d(ks_2d, compare_2d, 20.0 if args.quick else 60.0, 60.0 if args.quick else 300.0,
                        args.basin_amplitude, args.seeds_2d)
    if args.only_2d:
        print("\n| quantity | target | measured | met |")
        print("|---|---|---|---|")
        print("\n".join(table_2d))
        return 0
    lloyd_cap_s = 20.0 if args.quick else 120.0
    tol = 1e-8

    print("MG/Opt multigrid, 1-D, density 'linear', tol 1e-8 (relative gradient norm)")
    print(f"{'k':>6} {'V-cycles':>9} {'work':>6} {'coarse work':>12} {'best CPU time (s)':>17}")
    cycles, times, total_work = [], [], {}
    for k in ks:
        problem = CVTProblem(k, "linear")
        best = math.inf
        for _ in range(args.repeats):
            res = solve(problem, "multigrid", tol=tol, seed=0)
            assert res.converged, res.message
            best = min(best, res.cpu_time_s)
        cycles.append(res.iterations)
        times.append(best)
        total_work[k] = res.work + res.coarse_work
        print(f"{k:>6} {res.iterations:>9} {res.work:>6} {res.coarse_work:>12.1f} {best:>17.4f}")
    slope_all = fit_exponent(ks, times)
    big = [i for i, k in enumerate(ks) if k >= 256]
    slope_big = fit_exponent([ks[i] for i in big], [times[i] for i in big])
    spread = max(cycles) - min(cycles)

    print("\nLloyd vs multigrid at k = 1024, 1-D")
    problem = CVTProblem(1024, "linear")
    lloyd = solve(problem, "lloyd", tol=tol, seed=0, max_iter=10**7, max_time_s=lloyd_cap_s)
    mg_work = total_work[1024]
    if lloyd.converged:
        ratio_text = f"{lloyd.work / mg_work:.0f}x (Lloyd converged in {lloyd.iterations} iterations)"
        ratio_low = lloyd.work / mg_work
    else:
        ratio_low = lloyd.work / mg_work
        est = lloyd_extrapolated_work(lloyd)
        ratio_text = (f">= {ratio_low:.0f}x (Lloyd {lloyd.message}; it reached relative gradient "
                      f"{lloyd.rel_grad_norm:.1e}); extrapolated from its rate: Lloyd would need ~{est:.2e} "
                      f"evaluations, ~{est / mg_work:.1e}x")
    print(f"  multigrid work {mg_work:.0f} evaluations (fine + coarse equivalents); Lloyd work {lloyd.work}")

    print("\n| quantity | target | measured | met |")
    print("|---|---|---|---|")
    print(f"| multigrid V-cycles over k = {ks[0]}..{ks[-1]} | roughly constant (spread <= 2) | "
          f"{min(cycles)}..{max(cycles)} (spread {spread}) | {'yes' if spread <= 2 else 'no'} |")
    print(f"| multigrid time exponent, all k | <= 1.15 | {slope_all:.2f} | {'yes' if slope_all <= 1.15 else 'no'} |")
    print(f"| multigrid time exponent, k >= 256 | <= 1.15 | {slope_big:.2f} | {'yes' if slope_big <= 1.15 else 'no'} |")
    print(f"| work Lloyd / multigrid at k = 1024 | >= 10x | {ratio_text} | {'yes' if ratio_low >= 10 else 'no'} |")
    print("\n".join(table_2d))
    return 0


if __name__ == "__main__":
    from _timing import run_timed

    run_timed(main)
