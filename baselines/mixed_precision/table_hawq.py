"""HAWQ-V3 on the tables: its sensitivities computed once per table and shipped beside it.

HAWQ-V3's integer program needs ``Omega_i(b)`` per decision unit and width. On a table there is no
model to differentiate at search time, so:

* HAWQ-V3's published tables (``hawq-resnet18``, ``hawq-resnet50``) *are* its objective: the score
  is minus the summed perturbation ``sum_i Tr(H_i)/n_i * ||W_i - Q_b(W_i)||^2``, so
  ``Omega_i(b) = -score[i, b]`` (the integer program then returns the table's exact optimum).
* A generated table that ships its float network (``digits-cnn``, ``mnist1d-small``) gets
  ``Omega_i(b) = Tr(H_i)/n_i * ||Q_b(W_i) - W_i||^2`` from
  :func:`baselines.mixed_precision.hessian.hawq_sensitivities` on that network and the table's
  training data (:func:`quant_envs.mixed_precision.tables.live.live_problem`), computed by this
  module's command line and stored as ``<table file>_hawq_traces.json`` beside the table, with the
  command, torch version and numerics that made it::

      python -m baselines.mixed_precision.table_hawq --table digits-cnn
      python -m baselines.mixed_precision.table_hawq --table mnist1d-small

The traces file names the table's float network digest; a file that does not match the table
loaded is refused.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quant_envs.atomic_io import atomic_write_json
from quant_envs.mixed_precision.tables import DATA_DIR
from quant_envs.mixed_precision.tables.policy_table import PolicyTable
from quant_envs.mixed_precision.tables.registry import load_table

#: HAWQ-V2/V3's estimator settings used for the shipped traces (the live solver's defaults).
HUTCHINSON_SAMPLES = 16
HESSIAN_DATA = 256
TRACE_SEED = 0


def traces_path(table: PolicyTable) -> Path:
    return DATA_DIR / f"{table.name.replace('-', '_')}_hawq_traces.json"


def compute_traces(table: PolicyTable, samples: int = HUTCHINSON_SAMPLES, data: int = HESSIAN_DATA,
                   seed: int = TRACE_SEED) -> dict[str, Any]:
    """The JSON record of ``table``'s per-unit Hessian traces and ``Omega`` (weights only: a table
    takes one width per unit for weights and activations, and HAWQ-V3's objective is over weights)."""
    # lazy: torch (the Hessian traces and the table's live network), needed only to remake the traces
    from baselines.mixed_precision.hessian import hawq_sensitivities, weight_perturbations
    from quant_envs.mixed_precision.tables.live import live_problem, numerics

    if any(len(u) != 1 for u in table.units):
        raise ValueError(f"table={table.name!r} ties layers into units; traces per unit are not defined here")
    problem = live_problem(table)
    omega, traces = hawq_sensitivities(problem, samples, data, seed, activations=False)
    bits = list(problem.bits)
    return {
        "table": table.name, "table_digest": table.digest, "float_sha256": table.meta.get("float_sha256"),
        "bits": bits, "units": [u[0] for u in table.units],
        "weight_trace": traces.weight_trace.tolist(), "weight_numel": traces.weight_numel.tolist(),
        "weight_avg_trace": traces.weight_avg_trace.tolist(),
        "weight_perturbation": weight_perturbations(problem).tolist(),
        "omega": omega[:, np.arange(len(bits)), np.arange(len(bits))].tolist(),
        "hutchinson_samples": samples, "hessian_data": traces.data_size, "seed": seed,
        "command": "python -m baselines.mixed_precision.table_hawq " + shlex.join(sys.argv[1:]),
        "numerics": numerics(),
    }


def load_traces(table: PolicyTable) -> dict[str, Any]:
    path = traces_path(table)
    if not path.exists():
        raise ValueError(f"table={table.name!r} ships no HAWQ-V3 traces ({path.name}); make them with "
                         f"`python -m baselines.mixed_precision.table_hawq --table {table.name}`")
    record = json.loads(path.read_text())
    if record.get("float_sha256") != table.meta.get("float_sha256") or record.get("bits") != list(table.bits):
        raise ValueError(f"{path.name} was computed on another float network or widths than table {table.name!r}; "
                         "recompute it")
    return record


def table_omega(table: PolicyTable) -> tuple[np.ndarray, str]:
    """([units, len(bits)] Omega, where it came from) for HAWQ-V3's integer program on ``table``."""
    if table.separable and table.name.startswith("hawq-"):
        return -np.asarray(table.score, dtype=float), "the table's own objective (minus its score)"
    if not table.float_state:
        raise ValueError(f"table={table.name!r} has neither HAWQ-V3's objective nor a float network to "
                         "compute Hessian traces on")
    return np.asarray(load_traces(table)["omega"], dtype=float), traces_path(table).name


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.mixed_precision.table_hawq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="a generated table that ships its float network")
    parser.add_argument("--samples", type=int, default=HUTCHINSON_SAMPLES)
    parser.add_argument("--data", type=int, default=HESSIAN_DATA)
    parser.add_argument("--seed", type=int, default=TRACE_SEED)
    args = parser.parse_args(argv)
    table = load_table(args.table)
    record = compute_traces(table, args.samples, args.data, args.seed)
    path = atomic_write_json(traces_path(table), record)
    print(f"wrote {path}: avg traces {np.round(record['weight_avg_trace'], 6).tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
