"""Command line: run one or every mixed-precision baseline and print a markdown table.

    python -m baselines.mixed_precision --method hawq_v3 --task mnist1d-cnn --budget-fraction 0.25
    python -m baselines.mixed_precision --method all --json results/mp_baselines.json

The table gives the validation accuracy each method searched on, the test accuracy of its final
policy (measured after the search, not counted in its evaluations), the budget used, the reward
evaluations used and the wall time. Every method gets a fresh problem (an empty evaluation cache).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from baselines.mixed_precision.solvers import METHODS, SearchResult, solve
from quant_envs.atomic_io import atomic_write_json, check_writable_file, describe_os_error
from quant_envs.mixed_precision.problem import METRICS, MixedPrecisionProblem

PROG = "python -m baselines.mixed_precision"


class UsageError(Exception):
    """A bad argument or an unwritable output: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog=PROG,
                                 description="Non-RL mixed-precision quantization baselines.")
    ap.add_argument("--method", nargs="+", default=["all"], help=f"one or more of {', '.join(METHODS)}, or all")
    ap.add_argument("--task", default="mnist1d-cnn")
    ap.add_argument("--hardware", default="bismo-edge")
    ap.add_argument("--budget-metric", default="latency", choices=METRICS)
    ap.add_argument("--budget-fraction", type=float, default=None,
                    help="budget as a fraction of the all-8-bit cost (default: the smallest multiple of 0.05, "
                         ">= 0.25, leaving >= 1000 feasible policies)")
    ap.add_argument("--bits", type=int, nargs="+", default=list(range(2, 9)))
    ap.add_argument("--finetune-steps", type=int, default=None, help="default: the task's recipe")
    ap.add_argument("--two-steps-per-layer", action="store_true", help="search (w, a) pairs (HAQ's two steps)")
    ap.add_argument("--keep-first-last-8bit", action="store_true")
    ap.add_argument("--max-evaluations", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    return ap


def _row(r: SearchResult, test_accuracy: float) -> str:
    e = r.evaluation
    widths = " ".join(str(w) if w == a else f"{w}/{a}" for w, a in r.policy)
    return (f"| {r.method} | {100 * r.accuracy:.2f} | {100 * test_accuracy:.2f} | {e.budget_used:.3f} | "
            f"{r.num_evaluations} | {r.wall_time_s:.1f} | {widths} |")


def _check_args(args: argparse.Namespace) -> list[str]:
    """The methods to run; every argument and the output path checked before any work."""
    methods = list(METHODS) if args.method == ["all"] else args.method
    for m in methods:
        if m not in METHODS:
            raise UsageError(f"--method {m!r} is not allowed; expected one of: {', '.join(METHODS)}, all")
    for flag, value, lowest in (("--max-evaluations", args.max_evaluations, 1), ("--seed", args.seed, 0),
                                ("--finetune-steps", args.finetune_steps, 0)):
        if value is not None and value < lowest:  # None: the task's own default
            raise UsageError(f"{flag} {value} is not allowed; expected an integer >= {lowest}")
    if args.budget_fraction is not None and not (0 < args.budget_fraction < float("inf")):
        raise UsageError(f"--budget-fraction {args.budget_fraction} is not allowed; expected a finite number > 0")
    if args.json is not None:
        try:
            check_writable_file(args.json, "--json")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return methods


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    methods = _check_args(args)
    import torch

    torch.set_num_threads(1)

    def fresh_problem() -> MixedPrecisionProblem:  # one per method: its evaluations are its own
        return MixedPrecisionProblem(
            task=args.task, hardware=args.hardware, bits=args.bits, budget_metric=args.budget_metric,
            budget_fraction=args.budget_fraction, finetune_steps=args.finetune_steps,
            keep_first_last_8bit=args.keep_first_last_8bit)

    try:
        problem = fresh_problem()
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    equal_bits = not args.two_steps_per_layer
    print(f"task {args.task}, {args.hardware}, {args.budget_metric} budget {problem.budget_fraction:.3g} of all-8-bit, "
          f"finetune {problem.finetune_steps} steps, {'w == a' if equal_bits else '(w, a) pairs'}, "
          f"max {args.max_evaluations} evaluations, seed {args.seed}; float accuracy "
          f"{100 * problem.float_accuracy('val'):.2f} (val) / {100 * problem.float_accuracy('test'):.2f} (test)\n")
    lines = ["| method | val acc (%) | test acc (%) | budget used | evaluations | wall time (s) | bits per layer (w or w/a) |",
             "|---|---|---|---|---|---|---|"]
    records: list[dict[str, Any]] = []
    for n, m in enumerate(methods):
        if n:
            problem = fresh_problem()
        try:
            r = solve(problem, m, max_evaluations=args.max_evaluations, seed=args.seed, equal_bits=equal_bits)
        except ValueError as exc:
            lines.append(f"| {m} | n/a | n/a | | | | {exc} |")
            print(f"{m}: skipped: {exc}", file=sys.stderr)
            continue
        test = problem.evaluate(r.policy, split="test").accuracy
        lines.append(_row(r, test))
        print(r.summary(), file=sys.stderr)
        records.append({"method": m, "policy": [list(p) for p in r.policy], "val_accuracy": r.accuracy,
                        "test_accuracy": test, "budget_used": r.evaluation.budget_used,
                        "num_evaluations": r.num_evaluations, "wall_time_s": r.wall_time_s,
                        "history": [[[list(p) for p in pol], acc, cost] for pol, acc, cost in r.history]})
    print("\n".join(lines))
    if args.json is not None:
        try:
            atomic_write_json(args.json, {"args": vars(args), "results": records})
        except OSError as exc:  # e.g. the disk filled up during the search
            raise UsageError(f"--json {args.json!r}: cannot write: {describe_os_error(exc)}") from None
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
