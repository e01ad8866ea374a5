"""Generate an exhaustive benchmark table: every policy of a task retrained and evaluated.

Every policy of one width per layer (weights and activations alike) over ``--bits`` is quantized,
retrained and evaluated exactly as ``quant_envs/MixedPrecision-v0`` does
(``MixedPrecisionProblem.quantized_model``: the same fake quantization, ``--finetune-steps``
mini-batches seeded by ``--eval-seed``), and scored on the validation and the test split of the
same retrained network. The costs of every ``hw_sim`` profile (latency, energy, size per layer)
and the layers' ``hw_sim`` shapes (to recompute them when ``hw_sim`` changes) are recorded beside them, with the layer facts and weight standard deviations the observation
needs, so the table environment sees what the live one sees. The float network every policy was
retrained from is shipped in the table, with digests of it and of the task's data, so that the
table's live problem (:mod:`quant_envs.mixed_precision.tables.live`) is the same network on every
machine. The result is a compressed ``.npz`` in the generic table format
(:mod:`quant_envs.mixed_precision.tables.policy_table`).

Resumable: finished chunks of policies are kept in ``--work-dir`` (written atomically), so a run
that stops is continued by the same command; a different configuration in the same work directory
is refused, and so is a work directory whose chunks were computed under other numerics (torch, CPU
kernels, CPU model, device: :mod:`~quant_envs.mixed_precision.tables.chunks`) unless
``--allow-mixed-numerics`` is passed; the table's meta says which numerics made which chunks.
Parallel over ``--workers`` processes (each builds the task once, with one torch
thread); a tqdm bar shows progress. Example (2401 policies of the digits CNN)::

    OMP_NUM_THREADS=1 python -m quant_envs.mixed_precision.tables.build --task digits-cnn \\
        --bits 2 3 4 5 6 7 8 --finetune-steps 20 --eval-seed 0 --workers 2 \\
        --out quant_envs/mixed_precision/table_data/digits_cnn.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from hw_sim.metrics import UNITS
from quant_envs.atomic_io import atomic_write_json
from quant_envs.mixed_precision.model_cache import state_digest
from quant_envs.mixed_precision.problem import MixedPrecisionProblem
from quant_envs.mixed_precision.tables.chunks import (
    ALLOW_FLAG,
    MixedNumericsError,
    check_resume,
    numerics_meta,
    write_chunk,
)
from quant_envs.mixed_precision.tables.costs import hw_sim_costs
from quant_envs.mixed_precision.tables.npz import save_table
from quant_envs.mixed_precision.tables.policy_table import PolicyTable, TableLayer
from quant_envs.mixed_precision.tasks import data_digest

_PROBLEM = None  # the worker's problem, built once per process
_FLOAT_SHA: str | None = None  # the digest of its float network, recorded beside every chunk


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {"task": args.task, "bits": list(args.bits), "finetune_steps": args.finetune_steps,
            "eval_seed": args.eval_seed, "task_seed": args.task_seed, "chunk": args.chunk}


def config_problem(config: dict[str, Any]) -> MixedPrecisionProblem:
    """The live problem a generator's ``config`` names (task, bits, retraining steps and seeds;
    nothing cached, no budget): what every chunk of a table or a training set is evaluated on."""
    return MixedPrecisionProblem(task=config["task"], bits=config["bits"], finetune_steps=config["finetune_steps"],
                                 eval_seed=config["eval_seed"], task_kwargs={"seed": config["task_seed"]},
                                 cache_size=0, budget_fraction=1.0)


def _init_worker(config: dict[str, Any]) -> None:
    torch.set_num_threads(1)
    global _PROBLEM, _FLOAT_SHA
    _PROBLEM = config_problem(config)
    _FLOAT_SHA = float_digest(_PROBLEM)


def float_digest(problem: Any) -> str:
    """The SHA-256 of the problem's float network (what every policy is retrained from)."""
    return state_digest(problem.task.model.state_dict(), {})


def evaluate_policy(problem: Any, widths: Sequence[int]) -> tuple[float, float]:
    """(validation, test) accuracy of one retraining of ``widths`` (one width per layer), as
    ``MixedPrecisionProblem.evaluate`` computes the validation one."""
    return evaluate_policies(problem, [widths])[0]


def evaluate_policies(problem: Any, widths: Sequence[Sequence[int]]) -> list[tuple[float, float]]:
    """(validation, test) accuracy of each of ``widths`` (one width per layer each), one retraining
    per policy (``MixedPrecisionProblem.evaluate_splits``, i.e. ``evaluate_many``'s path)."""
    policies = [tuple((int(b), int(b)) for b in w) for w in widths]
    return [(r["val"].accuracy, r["test"].accuracy) for r in problem.evaluate_splits(policies, ("val", "test"))]


def measure_eval_cpu_s(problem: Any, count: int = 12, seed: int = 0) -> float:
    """Mean CPU seconds (process time, one torch thread) of one live evaluation of the problem's
    reward (``MixedPrecisionProblem.evaluate``: a retraining and a validation pass) over ``count``
    random policies: what the table environment reports as one evaluation's cost at its fidelity."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = np.random.default_rng(seed)
        bits = list(problem.bits)
        policies = [[(b, b) for b in rng.choice(bits, problem.num_layers).tolist()] for _ in range(count + 1)]
        problem.evaluate(policies[0])  # warm-up (first-call allocations)
        start = time.process_time()
        for pol in policies[1:]:
            problem.evaluate(pol)
        return (time.process_time() - start) / count
    finally:
        torch.set_num_threads(threads)


def _run_chunk(job: tuple[int, list[tuple[int, ...]], str, bool]) -> tuple[int, int]:
    k, policies, path, allow_mixed = job
    write_chunk(path, np.array(evaluate_policies(_PROBLEM, policies), dtype=float), allow_mixed, _FLOAT_SHA)
    return k, len(policies)


def policy_grid(bits: Sequence[int], layers: int) -> list[tuple[int, ...]]:
    """Every policy, row-major (the table's flat order): the last layer's width varies fastest."""
    return list(itertools.product(bits, repeat=layers))


def hw_layer_shapes(problem: Any) -> list[dict[str, Any]]:
    """The task's layers as ``hw_sim.LayerShape`` fields (what the table's costs are computed from)."""
    return [dataclasses.asdict(la.shape) for la in problem.layers]


def build_table(config: dict[str, Any], results: np.ndarray, name: str, command: str,
                wall_s: float, chunk_paths: Sequence[str | Path] = (), eval_cpu_s: float | None = None
                ) -> PolicyTable:
    problem = config_problem(config)
    bits = tuple(config["bits"])
    n = problem.num_layers
    shape = (len(bits),) * n
    shapes = hw_layer_shapes(problem)
    costs, skipped = hw_sim_costs(shapes, bits)
    layers = tuple(TableLayer(name=la.name, kind=la.kind, c_in=la.c_in, c_out=la.c_out, stride=la.stride,
                              kernel=la.kernel, num_weights=la.num_weights, in_hw=(la.in_hw[0], la.in_hw[1]))
                   for la in problem.layers)
    float_state = problem.task.model.state_dict()
    return PolicyTable(
        name=name, bits=bits, units=tuple((la.name,) for la in problem.layers), layers=layers,
        weight_std=np.asarray(problem.weight_std), costs=costs,
        metric_units=dict(UNITS),
        score=results[:, 0].reshape(shape), separable=False,
        score_name="validation accuracy", score_scale=100.0, regret_unit="accuracy points (validation)",
        score_offset=float(problem.float_accuracy("val")),
        columns={"test_accuracy": results[:, 1].reshape(shape)},
        default_hardware="bismo-edge", default_budget={"metric": "latency", "fraction": config.get("default_budget_fraction", 0.4)},
        default_reward_scale=0.1,
        meta={
            "generator": "quant_envs.mixed_precision.tables.build", "command": command, **config,
            "float_accuracy_val": float(problem.float_accuracy("val")),
            "float_accuracy_test": float(problem.float_accuracy("test")),
            "retraining": "MixedPrecisionProblem.quantized_model: fake quantization, finetune_steps mini-batches "
                          "seeded by eval_seed; val and test accuracy of the same retrained network",
            "hw_sim_profiles_skipped": skipped, "hw_layer_shapes": shapes, "python": platform.python_version(),
            "float_sha256": state_digest(float_state, {}), "data_sha256": data_digest(problem.task),
            # Retraining is bit-reproducible only with the same CPU kernels: from the shipped float
            # network, entries repeat exactly with these numerics, within tables.live.CROSS_CPU_SAMPLES
            # elsewhere; "mixed" (and numerics_by_chunk) where several made the chunks.
            **numerics_meta(list(chunk_paths)), "machine": platform.machine(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s_last_run": round(wall_s, 1),  # chunks computed by earlier runs not included
            # one live evaluation's CPU seconds at this fidelity (tables.fidelity; the env's info)
            "eval_cpu_s": eval_cpu_s,
            "weight_std": "std of the layer's float weights (as MixedPrecision-v0)",
        },
        float_state={k: v.detach().cpu().numpy().copy() for k, v in float_state.items()},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quant_envs.mixed_precision.tables.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="digits-cnn")
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 7, 8])
    parser.add_argument("--finetune-steps", type=int, default=20)
    parser.add_argument("--eval-seed", type=int, default=0, help="seeds the retraining (batch order)")
    parser.add_argument("--task-seed", type=int, default=0, help="seeds the float model's training")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=49, help="policies per resumable chunk")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N policies (timing)")
    parser.add_argument("--name", default=None, help="table name (default: the task's)")
    parser.add_argument("--default-budget-fraction", type=float, default=0.4,
                        help="the table environment's default latency budget (fraction of all-widest)")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument(ALLOW_FLAG, action="store_true",
                        help="resume a work directory whose chunks were computed under other numerics "
                             "(torch, CPU kernels, CPU model, device); each chunk's are recorded")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.workers < 1 or args.chunk < 1:
        parser.error(f"--workers={args.workers} and --chunk={args.chunk} must be >= 1")
    config = _config(args)
    work = args.work_dir or Path(os.environ.get("QUANT_ENVS_CACHE", ".cache")) / "tables" / args.task
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "config.json"
    if cfg_path.exists() and json.loads(cfg_path.read_text()) != config:
        parser.error(f"{work} holds a run with another configuration ({cfg_path.read_text()}); "
                     f"use another --work-dir")
    atomic_write_json(cfg_path, config)
    probe = config_problem(config)  # trains (or loads) the float model once, before the workers start
    try:
        check_resume(sorted(work.glob("chunk_*.npy")), args.allow_mixed_numerics, float_digest(probe))
    except MixedNumericsError as e:
        parser.error(str(e))
    policies = policy_grid(config["bits"], probe.num_layers)
    total = len(policies) if args.limit is None else min(args.limit, len(policies))
    chunks = [(k, policies[s:min(s + args.chunk, total)], str(work / f"chunk_{k:05d}.npy"), args.allow_mixed_numerics)
              for k, s in enumerate(range(0, total, args.chunk))]
    todo = [c for c in chunks if not Path(c[2]).exists()]
    start = time.perf_counter()
    bar = tqdm(total=total, initial=total - sum(len(c[1]) for c in todo), unit="policy", desc=args.task)
    if args.workers == 1:
        _init_worker(config)
        for job in todo:
            bar.update(_run_chunk(job)[1])
    else:
        with mp.get_context("spawn").Pool(args.workers, initializer=_init_worker, initargs=(config,)) as pool:
            for _, n in pool.imap_unordered(_run_chunk, todo):
                bar.update(n)
    bar.close()
    wall = time.perf_counter() - start
    done = len(todo) and sum(len(c[1]) for c in todo)
    if done:
        print(f"{done} policies in {wall:.1f} s ({wall / done:.3f} s per policy, {args.workers} worker(s))")
    if total < len(policies):
        print(f"--limit {total}: not writing {args.out} (a table needs all {len(policies)} policies)")
        return 0
    results = np.concatenate([np.load(c[2]) for c in chunks])
    table = build_table({**config, "default_budget_fraction": args.default_budget_fraction}, results,
                        args.name or args.task,
                        " ".join(["python -m quant_envs.mixed_precision.tables.build", *map(str, argv or sys.argv[1:])]),
                        wall, [c[2] for c in chunks],
                        measure_eval_cpu_s(config_problem(config)))
    save_table(table, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {len(results)} policies)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
