"""``python -m baselines.feel --out results/feel``: the quantized-FEEL table and figures.

Writes to ``--out``:

* ``comparison.csv`` / printed markdown: mean total training time (s) of AO and every baseline
  for K in {10, 20, 50, 100} devices and B in {50, 200, 1000} kHz (scenario seeds 0, 1, 2);
* ``time_vs_bandwidth.png`` (K = 20) and ``time_vs_devices.png`` (B = 200 kHz);
* ``fit.csv``, ``fit.png``: the data-and-model-driven fit (simulated gap curves against the
  fitted closed form) on ``make_scenario(10, seed=0)``, with the shipped default constants;
* ``predicted_vs_simulated.csv`` / ``.png``: the model's training time of every solver's
  allocation against the time measured with the real simulator's rounds.

``--quick`` shrinks every sweep (for a smoke run); ``--no-simulation`` skips the torch parts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from baselines.feel.report import (
    comparison_table,
    plot_fit,
    plot_predicted_vs_simulated,
    plot_sweep,
    predicted_vs_simulated,
    sweep,
    write_csv,
)
from quant_envs.atomic_io import atomic_write_text, writable_directory_problem
from quant_envs.feel.fitting import run_fit
from quant_envs.feel.scenario import DEFAULT_CONVERGENCE, make_scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.feel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/feel", help="output folder (default results/feel)")
    parser.add_argument("--quick", action="store_true", help="small sweeps and short simulations (smoke run)")
    parser.add_argument("--no-simulation", action="store_true", help="skip the fit and predicted-vs-simulated (no torch)")
    parser.add_argument("--threads", type=int, default=1, help="torch / BLAS threads, >= 1 (default 1)")
    args = parser.parse_args(argv)
    # Checked before any work; one line and exit status 2, as every CLI of the project.
    problem = (f"--threads {args.threads} is not allowed; expected an integer >= 1" if args.threads < 1
               else writable_directory_problem("--out", args.out))
    if problem is not None:
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return 2
    args.out = Path(args.out)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads):  # tiny matrices: extra BLAS threads only contend
        try:
            return _run(args)
        except OSError as exc:  # e.g. the disk filled up while writing: one line, not a traceback
            print(f"{parser.prog}: error: --out {str(args.out)!r}: {exc.strerror or exc}", file=sys.stderr)
            return 2


def _run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    devices = [10, 20] if args.quick else [10, 20, 50, 100]
    bandwidths = [50e3, 200e3] if args.quick else [50e3, 200e3, 1e6]
    seeds = [0] if args.quick else [0, 1, 2]
    table = comparison_table(devices, bandwidths, seeds, progress=log)
    write_csv(out / "comparison.csv", table.header, table.rows)
    md = ["## Total training time to the target optimality gap (mean over scenario seeds "
          f"{', '.join(map(str, seeds))}; model: {DEFAULT_CONVERGENCE.target_gap:g} gap target)", "", table.markdown(), ""]

    bw_values = np.geomspace(20e3, 5e6, 5 if args.quick else 9)
    curves = sweep(bw_values, lambda b, s: make_scenario(20, seed=s, total_bandwidth=b), seeds)
    plot_sweep(out / "time_vs_bandwidth.png", bw_values / 1e3, curves, "total bandwidth B (kHz)", "K = 20 devices")
    k_values = np.array([5, 10, 20] if args.quick else [5, 10, 20, 50, 100, 200])
    curves = sweep(k_values, lambda k, s: make_scenario(int(k), seed=s, total_bandwidth=200e3), seeds)
    plot_sweep(out / "time_vs_devices.png", k_values, curves, "number of devices K", "B = 200 kHz")
    log("sweeps done")

    if not args.no_simulation:
        import torch

        torch.set_num_threads(args.threads)
        fit_scn = make_scenario(10, seed=0)
        rep = run_fit(fit_scn, target_gap=DEFAULT_CONVERGENCE.target_gap, seeds=2 if args.quick else 4,
                      max_rounds=800 if args.quick else 4000)
        c, d = rep.convergence, DEFAULT_CONVERGENCE
        fit_rows = [[name, getattr(c, name), getattr(d, name)] for name in ("a0", "a1", "gamma", "p", "eff_dim", "knee")]
        write_csv(out / "fit.csv", ["constant", "fitted now", "shipped default"], fit_rows)
        plot_fit(out / "fit.png", rep, "Data-and-model-driven fit (K = 10, seed 0): data solid, model dashed")
        rounds_rows = [[int(lv[0]) if lv[0] else "full", q, ns, npred, 100.0 * (npred / ns - 1.0)]
                       for lv, q, ns, npred in zip(rep.level_configs, rep.q_sums, rep.simulated_rounds, rep.predicted_rounds, strict=True)]
        md += ["## Fitted convergence constants (K = 10, seed 0)", "",
               "\n".join(["| constant | fitted now | shipped default |", "|---|---|---|"]
                         + [f"| {n} | {a:.4g} | {b:.4g} |" for n, a, b in fit_rows]), "",
               "| levels | Q | simulated rounds | fitted rounds | error (%) |", "|---|---|---|---|---|"]
        md += [f"| {r[0]} | {r[1]:.4g} | {r[2]:.0f} | {r[3]:.1f} | {r[4]:+.1f} |" for r in rounds_rows]
        md.append("")
        log(f"fit done: {c}")

        scn = [("K=10 seed 0 (fit)", make_scenario(10, seed=0)), ("K=20 seed 1", make_scenario(20, seed=1))]
        if not args.quick:
            scn.append(("K=10 seed 2, 1 MHz", make_scenario(10, seed=2, total_bandwidth=1e6)))
        pvs = predicted_vs_simulated(scn, seeds=2 if args.quick else 4, max_rounds=800 if args.quick else 4000, progress=log)
        write_csv(out / "predicted_vs_simulated.csv", pvs.header, pvs.rows)
        plot_predicted_vs_simulated(out / "predicted_vs_simulated.png", pvs)
        md += ["## Predicted vs simulated training time", "", pvs.markdown(), ""]

    text = "\n".join(md)
    atomic_write_text(out / "README.md", text + "\n")
    print(text)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
