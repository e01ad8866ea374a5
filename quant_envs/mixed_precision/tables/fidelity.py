"""Fidelities of a generated table: its scores at several retraining lengths, and what one live
evaluation costs at each.

A generated table's ``score`` is the validation accuracy after ``meta["finetune_steps"]`` retraining
steps (its *default fidelity*). A table may hold other fidelities as extra columns, named in
``meta["fidelities"]``: ``{"<steps>": {"score": <column or "score">, "test": <column>,
"eval_cpu_s": <seconds>}}``. :func:`at_fidelity` gives the table as seen at one fidelity (its score
and test column swapped in), so the environment, its exact optimum and its regret all use that
fidelity. ``eval_cpu_s`` is the CPU seconds (one thread) one evaluation of the live environment
costs at that fidelity on the generating machine, so that multi-fidelity methods can be charged
honestly; :mod:`~quant_envs.mixed_precision.tables.build` measures it when it generates a table.

Merging tables of one task made at different fidelities (same widths, float network and data)::

    python -m quant_envs.mixed_precision.tables.fidelity main.npz other.npz --out both.npz
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

from quant_envs.mixed_precision.tables.npz import load_npz, save_table
from quant_envs.mixed_precision.tables.policy_table import PolicyTable

#: CPU seconds per live evaluation (validation only, one torch thread) of the tables generated
#: before the generator measured it, keyed by table name and retraining steps: the mean process
#: time of ``MixedPrecisionProblem.evaluate`` over 12 random policies on the table's live problem
#: (``tables.build.measure_eval_cpu_s``, two runs of seeds 0 and 1 averaged: 0.073/0.077 and
#: 0.096/0.088; AMD EPYC, AVX512 kernels, a 2-core machine shared with other jobs).
MEASURED_EVAL_CPU_S: dict[str, dict[int, float]] = {"digits-cnn": {20: 0.075}, "mnist1d-small": {10: 0.092}}


def fidelities(table: PolicyTable) -> dict[int, dict[str, Any]]:
    """Retraining steps -> ``{"score", "test", "eval_cpu_s"}`` of every fidelity ``table`` holds
    (a table without ``meta["fidelities"]`` holds its default one; HAWQ's tables none)."""
    if "fidelities" in table.meta:
        return {int(k): dict(v) for k, v in table.meta["fidelities"].items()}
    if "finetune_steps" not in table.meta:
        return {}
    steps = int(table.meta["finetune_steps"])
    cpu = table.meta.get("eval_cpu_s", MEASURED_EVAL_CPU_S.get(table.name, {}).get(steps))
    return {steps: {"score": "score", "test": "test_accuracy" if "test_accuracy" in table.columns else None,
                    "eval_cpu_s": cpu}}


def default_fidelity(table: PolicyTable) -> int | None:
    return int(table.meta["finetune_steps"]) if "finetune_steps" in table.meta else None


def eval_cost_cpu_s(table: PolicyTable, steps: int | None = None) -> float | None:
    """CPU seconds of one live evaluation at ``steps`` (default: the table's fidelity); None where
    not recorded (HAWQ's published tables have no live evaluation)."""
    steps = default_fidelity(table) if steps is None else steps
    cpu = fidelities(table).get(steps, {}).get("eval_cpu_s") if steps is not None else None
    return None if cpu is None else float(cpu)


def at_fidelity(table: PolicyTable, steps: int | None) -> PolicyTable:
    """``table`` seen at ``steps`` retraining steps (None: its default fidelity): that fidelity's
    score and test column, the other fidelities' columns dropped, so the view is the table that
    was generated at ``steps`` (the same :attr:`~PolicyTable.digest`)."""
    held = fidelities(table)
    if "default_fidelity" in table.meta and "fidelities" in table.meta:  # already a view: itself, or refused
        if steps is None or steps == table.meta["finetune_steps"]:
            return table
        raise ValueError(f"fidelity={steps!r} is not allowed: table {table.name!r} is already seen at "
                         f"{table.meta['finetune_steps']} steps; load the table itself for another fidelity")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps not in held):
        raise ValueError(f"fidelity={steps!r} is not allowed for table {table.name!r}; expected one of "
                         f"{sorted(held)} (retraining steps it holds) or None")
    if "fidelities" not in table.meta:
        return table
    steps = default_fidelity(table) if steps is None else steps
    assert steps is not None
    f = held[steps]
    other = {v.get(k) for v in held.values() for k in ("score", "test")} - {None, "score", "test_accuracy"}
    columns = {k: v for k, v in table.columns.items() if k not in other and k != "test_accuracy"}
    if f.get("test"):
        columns["test_accuracy"] = table.columns[f["test"]]
    score = table.score if f["score"] == "score" else table.columns[f["score"]]
    return dataclasses.replace(table, score=score, columns=columns,
                               meta={**table.meta, "finetune_steps": steps, "default_fidelity": default_fidelity(table)})


def merge_fidelities(main: PolicyTable, *others: PolicyTable) -> PolicyTable:
    """``main`` with the scores of ``others`` (the same task at other retraining steps) as extra
    fidelities; refuses tables of another width set, float network or data."""
    held = fidelities(main)
    columns = dict(main.columns)
    for other in others:
        for key in ("float_sha256", "data_sha256", "task", "eval_seed", "task_seed"):
            if main.meta.get(key) != other.meta.get(key) or main.bits != other.bits:
                raise ValueError(f"table {other.name!r} differs from {main.name!r} in {key!r} or bits: "
                                 f"not the same benchmark at another fidelity")
        steps = int(other.meta["finetune_steps"])
        if steps in held:
            raise ValueError(f"fidelity {steps} is in both tables")
        columns[f"val_accuracy@{steps}"] = other.score
        if "test_accuracy" in other.columns:
            columns[f"test_accuracy@{steps}"] = other.columns["test_accuracy"]
        held[steps] = {"score": f"val_accuracy@{steps}",
                       "test": f"test_accuracy@{steps}" if "test_accuracy" in other.columns else None,
                       "eval_cpu_s": eval_cost_cpu_s(other),
                       "numerics_by_chunk": other.meta.get("numerics_by_chunk"), "command": other.meta.get("command")}
    return dataclasses.replace(main, columns=columns,
                               meta={**main.meta, "fidelities": {str(k): v for k, v in sorted(held.items())}})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quant_envs.mixed_precision.tables.fidelity",
                                     description="Merge tables of one task at several fidelities into one.")
    parser.add_argument("tables", nargs="+", help="the default fidelity's table first, then the others")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    tables = [load_npz(p, live_costs=False) for p in args.tables]
    merged = merge_fidelities(tables[0], *tables[1:])
    save_table(merged, args.out)
    print(f"wrote {args.out}: fidelities {sorted(fidelities(merged))} (default {default_fidelity(merged)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
