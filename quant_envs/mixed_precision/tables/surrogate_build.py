"""Make a surrogate scenario: a live training set (:mod:`.sample`) fitted by a surrogate
(:mod:`.surrogate`) and packaged as a :class:`~.policy_table.PolicyTable` the table environment
serves by name, as an exhaustive table is served.

The table holds what the environment and the checks need: the task's layer facts and ``hw_sim``
costs, the float network every training policy was retrained from (so that the training set can
be re-evaluated live, :func:`~.live.recheck`), the surrogate's coefficients or its whole grid, and
in ``meta`` the fit (family, penalty, held-out fidelity, refit command), the training set's digest
and numerics per chunk, and the exact optimum of every instance of :func:`~.scenarios.instances`'
grid (``meta["optima"]``), solved here once: by enumeration up to
:data:`~.reference.ENUMERATION_LIMIT` policies, else certified by an integer program
(:mod:`.surrogate_optimum`). The training set itself is shipped beside the table
(``<out stem>_samples.npz``), so that anyone can refit or compare a surrogate family::

    python -m quant_envs.mixed_precision.tables.surrogate_build \\
        --samples .cache/samples/mnist1d-cnn/samples.npz --family trees --name mnist1d-cnn-s \\
        --default-budget-level 0.25 --out quant_envs/mixed_precision/table_data/mnist1d_cnn_s.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hw_sim.metrics import UNITS
from quant_envs.atomic_io import atomic_path
from quant_envs.mixed_precision.model_cache import state_digest
from quant_envs.mixed_precision.tables.build import (
    config_problem,
    float_digest,
    hw_layer_shapes,
    measure_eval_cpu_s,
)
from quant_envs.mixed_precision.tables.costs import hw_sim_costs
from quant_envs.mixed_precision.tables.npz import save_table
from quant_envs.mixed_precision.tables.policy_table import PolicyTable, TableLayer
from quant_envs.mixed_precision.tables.problem import TableProblem
from quant_envs.mixed_precision.tables.reference import cost_digest
from quant_envs.mixed_precision.tables.scenarios import instances
from quant_envs.mixed_precision.tables.surrogate import (
    FAMILIES,
    LINKS,
    PAIR_MODES,
    SurrogateTable,
    fit_surrogate,
    load_training_set,
)
from quant_envs.mixed_precision.tables.training_data import file_sha256
from quant_envs.mixed_precision.tasks import data_digest

__all__ = ["main", "solve_instances", "surrogate_table"]


def surrogate_table(samples: dict[str, Any], model: SurrogateTable, name: str, command: str,
                    default_hardware: str, default_budget: dict[str, Any], eval_cpu_s: float | None) -> PolicyTable:
    """The table of ``model`` fitted to ``samples`` (:func:`~.surrogate.load_training_set`), with
    the live task's layers, costs and float network (which must be the one the samples used)."""
    src = samples["meta"]
    config = {k: src[k] for k in ("task", "bits", "finetune_steps", "eval_seed", "task_seed")}
    problem = config_problem(config)
    if float_digest(problem) != src["float_sha256"]:
        raise ValueError(f"the {config['task']} float network here ({float_digest(problem)[:12]}) is not the one the "
                         f"samples were retrained from ({src['float_sha256'][:12]}): copy that machine's "
                         "QUANT_ENVS_CACHE along, or sample again here")
    bits = tuple(config["bits"])
    shapes = hw_layer_shapes(problem)
    costs, skipped = hw_sim_costs(shapes, bits)
    float_state = problem.task.model.state_dict()
    numerics = {k: src.get(k) for k in ("torch", "cpu_capability", "cpu_model", "device", "numerics_status",
                                        "numerics_by_chunk")}
    return PolicyTable(
        name=name, bits=bits, units=tuple((la.name,) for la in problem.layers),
        layers=tuple(TableLayer(name=la.name, kind=la.kind, c_in=la.c_in, c_out=la.c_out, stride=la.stride,
                                kernel=la.kernel, num_weights=la.num_weights, in_hw=(la.in_hw[0], la.in_hw[1]))
                     for la in problem.layers),
        weight_std=np.asarray(problem.weight_std), costs=costs, metric_units=dict(UNITS),
        score=np.zeros(0), separable=False, score_name="validation accuracy (surrogate)", score_scale=100.0,
        regret_unit="accuracy points (validation, surrogate)", score_offset=float(problem.float_accuracy("val")),
        default_hardware=default_hardware, default_budget=default_budget, default_reward_scale=0.1,
        meta={
            "generator": "quant_envs.mixed_precision.tables.surrogate_build", "command": command, **config,
            "surrogate": {k: v for k, v in model.meta.items() if k != "grid_quantization"},
            "float_accuracy_val": float(problem.float_accuracy("val")),
            "float_accuracy_test": float(problem.float_accuracy("test")),
            "retraining": "as tables.sample: MixedPrecisionProblem's retraining, val and test accuracy",
            "hw_sim_profiles_skipped": skipped, "hw_layer_shapes": shapes, "python": platform.python_version(),
            "float_sha256": state_digest(float_state, {}), "data_sha256": data_digest(problem.task),
            **numerics, "machine": platform.machine(), "eval_cpu_s": eval_cpu_s,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "weight_std": "std of the layer's float weights (as MixedPrecision-v0)",
        },
        float_state={k: v.detach().cpu().numpy().copy() for k, v in float_state.items()},
        model=model,
    )


def solve_instances(table: PolicyTable) -> list[dict[str, Any]]:
    """The exact optimum (and worst policy) of every instance of the scenario grid, as
    ``meta["optima"]`` entries (looked up by :func:`~.reference.cost_digest`)."""
    rows = []
    for inst in tqdm(instances(table), desc=f"{table.name} optima", unit="instance"):
        start = time.perf_counter()
        p = TableProblem(table, **inst)
        o = p.optimum
        rows.append({**inst, "budget": p.budget, "cost_digest": cost_digest(p.unit_cost, p.budget),
                     "index": o.index.tolist(), "score": o.score, "cost": o.cost, "worst_index": o.worst_index.tolist(),
                     "worst_score": o.worst_score, "method": o.method, "num_feasible": o.num_feasible,
                     "solve_s": round(time.perf_counter() - start, 2)})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quant_envs.mixed_precision.tables.surrogate_build",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", required=True, help="the .npz written by tables.sample")
    parser.add_argument("--family", choices=FAMILIES, required=True)
    parser.add_argument("--pairs", choices=PAIR_MODES, default="all", help="the pairwise family's pair terms")
    parser.add_argument("--link", choices=LINKS, default="identity", help="the pairwise family's link")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", required=True, help="the scenario's name (as registered)")
    parser.add_argument("--default-hardware", default="bismo-edge")
    parser.add_argument("--default-metric", default="latency")
    parser.add_argument("--default-budget-level", type=float, default=0.25)
    parser.add_argument("--out", required=True, help="the table (.npz); the training set is copied beside it")
    args = parser.parse_args(argv)
    command = " ".join(["python -m quant_envs.mixed_precision.tables.surrogate_build",
                        *(argv if argv is not None else sys.argv[1:])])
    data = load_training_set(args.samples)
    model = fit_surrogate(data, args.family, args.pairs, args.seed, args.name, command=command, link=args.link)
    print(json.dumps({"family": args.family, "fidelity": model.meta.get("fidelity")}), flush=True)
    with np.load(args.samples, allow_pickle=False) as z:
        samples = {"meta": json.loads(str(z["meta"]))}
    problem = config_problem({k: samples["meta"][k] for k in ("task", "bits", "finetune_steps", "eval_seed", "task_seed")})
    table = surrogate_table(samples, model, args.name, command, args.default_hardware,
                            {"metric": args.default_metric, "level": args.default_budget_level},
                            eval_cpu_s=measure_eval_cpu_s(problem))
    out = Path(args.out)
    samples_out = out.with_name(out.stem + "_samples.npz")
    with atomic_path(samples_out) as tmp:
        shutil.copyfile(args.samples, tmp)
    table = dataclasses.replace(table, meta={**table.meta, "samples_file": samples_out.name,
                                             "samples_sha256": file_sha256(samples_out)})
    table = dataclasses.replace(table, meta={**table.meta, "optima": solve_instances(table), "optima_digest": table.digest})
    save_table(table, out)
    print(json.dumps({"out": str(out), "digest": table.digest, "samples": str(samples_out),
                      "instances": len(table.meta["optima"])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
