"""``python -m baselines.compander``: prints the comparison table, writes a CSV per source and the figure.

Every bad argument is refused before any work with one line naming the flag and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from baselines.compander.result import QuantizerResult
from baselines.compander.table import (
    COLUMNS,
    comparison_table,
    csv_rows,
    format_table,
    plot_dynamic_range,
)
from quant_envs.atomic_io import atomic_write_csv, writable_directory_problem
from quant_envs.compander.quantizer import VARIANCE_DB_LIMIT
from quant_envs.compander.sources import available_sources

__all__ = ["MAX_CLI_LEVELS", "MAX_CLI_SEGMENTS", "build_parser", "check_arguments", "main", "writable_directory_problem"]

#: Largest --segments: the solver's own limit (beyond it the spline equals the optimal compander
#: to 1e-5 dB while the Nelder-Mead search over L - 1 thresholds only grows).
MAX_CLI_SEGMENTS = 64
#: Largest --levels / --figure-levels (exact distortion is O(N); 2^16 levels is 96 dB of SQNR).
MAX_CLI_LEVELS = 2**16


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m baselines.compander",
        description="SQNR of Lloyd-Max, optimal, spline, mu-law and A-law companders per number of levels.",
    )
    parser.add_argument("--source", default="both", choices=[*available_sources(), "both"])
    parser.add_argument("--levels", type=int, nargs="+", default=[8, 16, 32, 64, 128], help="numbers of output levels N")
    parser.add_argument("--segments", type=int, default=2, help=f"spline segments on [0, x_max], 1..{MAX_CLI_SEGMENTS} (paper: 2)")
    parser.add_argument("--figure-levels", type=int, default=None, help="N of the SQNR-vs-variance figure (default: middle of --levels)")
    parser.add_argument("--variance-db", type=float, nargs=2, default=[-30.0, 20.0], metavar=("LOW", "HIGH"))
    parser.add_argument("--out", default="results/compander", help="directory for CSV tables and the figure")
    return parser


def check_arguments(args: argparse.Namespace) -> str | None:
    """The first bad command-line value as one line naming the flag, or None."""
    bad = [n for n in args.levels if not 2 <= n <= MAX_CLI_LEVELS]
    if bad:
        return f"--levels {bad[0]} is not allowed; expected every N in [2, {MAX_CLI_LEVELS}]"
    if args.figure_levels is not None and not 2 <= args.figure_levels <= MAX_CLI_LEVELS:
        return f"--figure-levels {args.figure_levels} is not allowed; expected an integer in [2, {MAX_CLI_LEVELS}]"
    if not 1 <= args.segments <= MAX_CLI_SEGMENTS:
        return f"--segments {args.segments} is not allowed; expected an integer in [1, {MAX_CLI_SEGMENTS}]"
    if not all(np.isfinite(v) and abs(v) <= VARIANCE_DB_LIMIT for v in args.variance_db):
        return (f"--variance-db {args.variance_db} is not allowed; expected finite values in "
                f"[-{VARIANCE_DB_LIMIT:g}, {VARIANCE_DB_LIMIT:g}] dB")
    return writable_directory_problem("--out", args.out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = check_arguments(args)
    if problem is None:
        args.out = Path(args.out)
        try:
            return _run(args)
        except OSError as exc:  # e.g. the disk filled up while writing: one line, not a traceback
            problem = f"--out {str(args.out)!r}: {exc.strerror or exc}"
    print(f"{parser.prog}: error: {problem}", file=sys.stderr)  # one line, exit status 2
    return 2


def _run(args: argparse.Namespace) -> int:
    sources = ["gaussian", "laplacian"] if args.source == "both" else [args.source]
    fig_n = args.figure_levels or sorted(args.levels)[len(args.levels) // 2]
    variance_db = np.linspace(args.variance_db[0], args.variance_db[1], 201)
    curves: dict[str, dict[str, QuantizerResult]] = {}
    for name in sources:
        t0 = time.perf_counter()
        rows, designs = comparison_table(name, args.levels, segments=args.segments)
        print(f"\n### {name} source, unit variance: SQNR [dB] per number of levels N\n")
        print(format_table(rows))
        print(f"\n({time.perf_counter() - t0:.2f} s; t* = optimised segment threshold of the degree-2 spline,"
              " x_max = optimal compander support region, both in units of sigma)")
        atomic_write_csv(args.out / f"table_{name}.csv", csv_rows(rows), [title for _, title in COLUMNS])
        if fig_n in designs:
            curves[name] = designs[fig_n]
        else:
            _, extra = comparison_table(name, [fig_n], segments=args.segments)
            curves[name] = extra[fig_n]
    fig_path = plot_dynamic_range(curves, variance_db, args.out / f"sqnr_vs_variance_N{fig_n}.png", fig_n)
    print(f"\nwrote {args.out}/table_<source>.csv and {fig_path}")
    return 0
