"""Benchmark hw_sim: whole-policy queries and table builds for MobileNetV2's 53 layers.

Run:  python benchmarks/bench_hw_sim.py  [--repeat N]

Targets: one whole-policy query <= 5 us, one table build (53 layers x 7 x 7 widths)
<= 50 ms, on a 2-core machine. Each figure is printed beside the reference measured in the same
run: a plain Python loop over ``Accelerator.layer_cost`` computing the same numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from _timing import best_per_call

import hw_sim
from hw_sim import networks

QUERY_TARGET_S = 5e-6
BUILD_TARGET_S = 50e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timing repeats (median reported)")
    args = parser.parse_args()

    shapes = networks.mobilenet_v2()
    bits = list(range(2, 9))
    n_layers = len(shapes)
    rng = np.random.default_rng(0)
    print(f"hw_sim benchmark: MobileNetV2, {n_layers} layers, bits {bits[0]}..{bits[-1]}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPU(s), "
        f"{platform.processor() or platform.machine()}; load average {load:.1f} at start; "
        f"best of {args.repeat} runs"
    )
    print()

    # ------------------------------------------------------------------ table build
    print("table build (53 layers x 7 w-bits x 7 a-bits)")
    print(
        f"{'profile':<15} {'CostTable':>12} {'loop over layer_cost':>22} {'speed-up':>9}  target <= 50 ms"
    )
    build_ok = True
    for name, acc in hw_sim.PROFILES.items():
        t_table = best_per_call(
            lambda acc=acc: hw_sim.CostTable(shapes, acc, bits=bits), number=5, repeat=args.repeat
        )

        def loop(acc=acc):
            return [[[acc.layer_cost(s, w, a) for a in bits] for w in bits] for s in shapes]

        t_loop = best_per_call(loop, number=1, repeat=max(1, args.repeat // 3))
        ok = t_table <= BUILD_TARGET_S
        build_ok &= ok
        print(
            f"{name:<15} {t_table * 1e3:>9.2f} ms {t_loop * 1e3:>19.1f} ms {t_loop / t_table:>8.0f}x  {'met' if ok else 'NOT met'}"
        )
    print()

    # ------------------------------------------------------------------ whole-policy queries
    acc = hw_sim.get_accelerator("bismo-edge")
    table = hw_sim.CostTable(shapes, acc, bits=bits)
    n_pol = 256
    w_idx = rng.integers(0, len(bits), size=(n_pol, n_layers))
    a_idx = rng.integers(0, len(bits), size=(n_pol, n_layers))
    w_bits = table.bits[w_idx]
    a_bits = table.bits[a_idx]
    w_lists = w_bits.tolist()
    a_lists = a_bits.tolist()
    # every query path must agree with the reference before it is timed
    for p in range(8):
        ref = sum(
            acc.layer_cost(s, int(w), int(a)).latency_s
            for s, w, a in zip(shapes, w_bits[p], a_bits[p], strict=True)
        )
        assert np.isclose(table.policy_cost_index(w_idx[p], a_idx[p]), ref, rtol=1e-12)
        assert np.isclose(table.policy_cost(w_bits[p], a_bits[p]), ref, rtol=1e-12)

    counter = iter(range(10**12))

    def nxt() -> int:
        return next(counter) % n_pol

    paths = {
        "policy_cost_index(int arrays)": lambda: table.policy_cost_index(
            w_idx[(i := nxt())], a_idx[i]
        ),
        "policy_cost(bit-width arrays)": lambda: table.policy_cost(w_bits[(i := nxt())], a_bits[i]),
        "policy_cost(python lists)": lambda: table.policy_cost(w_lists[(i := nxt())], a_lists[i]),
        "policy_costs(all 3 metrics)": lambda: table.policy_costs(w_bits[(i := nxt())], a_bits[i]),
        "min_completion_cost(mask)": lambda: table.min_completion_cost(
            "latency", table.allowed_mask()
        ),
        # the floor: the two numpy calls any query needs (one gather, one dot), no API around them
        "floor: gather + dot, no checks": lambda: table.latency[
            rows, w_idx[(i := nxt())], a_idx[i]
        ].dot(ones),
    }
    rows, ones = np.arange(n_layers), np.ones(n_layers)
    overhead = best_per_call(
        lambda: (w_idx[(i := nxt())], a_idx[i]), number=20000, repeat=args.repeat
    )

    def reference() -> float:
        i = nxt()
        return sum(
            acc.layer_cost(s, w, a).latency_s
            for s, w, a in zip(shapes, w_lists[i], a_lists[i], strict=True)
        )

    t_ref = best_per_call(reference, number=3, repeat=max(1, args.repeat // 2))
    print(
        f"whole-policy latency query, {n_layers} layers (policy selection overhead {overhead * 1e6:.2f} us subtracted)"
    )
    print(
        f"{'path':<32} {'per query':>11} {'loop over layer_cost':>22} {'speed-up':>9}  target <= 5 us"
    )
    query_ok = None
    for label, fn in paths.items():
        t = max(
            best_per_call(
                fn, number=20000 if "min_completion" not in label else 2000, repeat=args.repeat
            )
            - overhead,
            1e-9,
        )
        verdict = ""
        if label.startswith("policy_cost_index"):
            query_ok = t <= QUERY_TARGET_S
            verdict = "met" if query_ok else "NOT met"
        print(
            f"{label:<32} {t * 1e6:>8.2f} us {t_ref * 1e6:>19.0f} us {t_ref / t:>8.0f}x  {verdict}"
        )
    print()
    print(
        f"targets: policy query <= 5 us: {'met' if query_ok else 'NOT met'}; table build <= 50 ms: {'met' if build_ok else 'NOT met'}"
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(finished {time.strftime('%Y-%m-%d %H:%M:%S')}, load average {load:.1f})")


if __name__ == "__main__":
    main()
