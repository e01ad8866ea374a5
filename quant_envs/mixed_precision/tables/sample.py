"""Live training sets for surrogate tables: policies retrained and scored as ``MixedPrecision-v1``
scores them, where the policy grid is too large for an exhaustive table.

The policies are planned once (seeded) and kept in ``--work`` (``plan.npz``), then evaluated in
resumable chunks exactly as :mod:`~quant_envs.mixed_precision.tables.build` evaluates a table's
(validation and test accuracy of one retraining; every chunk labelled with its numerics, a resume
under other numerics refused unless ``--allow-mixed-numerics``). The plan mixes:

* **random feasible policies across budgets**: a random ``hw_sim`` profile, budget metric and
  budget level (``cost(all-narrowest) + level * (cost(all-widest) - cost(all-narrowest))``, level
  uniform in ``--levels``), then one width per unit drawn as a random agent draws it (uniformly
  among the widths that still leave a feasible completion);
* **policies from search trajectories** (``--trajectory-share`` of them), so that the top of the
  landscape is sampled and not only its bulk: regularised evolution under such a random budget on a
  cheap separable proxy (the sum over units of the validation accuracy with that one unit
  quantized, every other unit at the widest width, no retraining: ``units x widths`` live
  evaluations, made once while planning); every policy an evolution visits is a candidate, and the
  plan takes them evenly along each trajectory, its best included.

``--holdout`` of the planned policies (drawn at random from both kinds) are marked held out: the
fidelity of a surrogate fitted on the rest is measured on them (``benchmarks/bench_surrogate.py
--samples``). The result (``--out``, default ``WORK/samples.npz``): width indices, validation and
test accuracy, the held-out mask, each policy's kind and planning budget, and the provenance
(command, configuration, numerics per chunk). Example (a tiny set)::

    python -m quant_envs.mixed_precision.tables.sample --task digits-cnn --bits 2..8 --count 20 \\
        --holdout 4 --work /tmp/digits-samples
"""

from __future__ import annotations

import argparse
import datetime
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

from quant_envs.atomic_io import atomic_path, atomic_write_json
from quant_envs.mixed_precision.model_cache import state_digest
from quant_envs.mixed_precision.tables import build
from quant_envs.mixed_precision.tables.chunks import (
    ALLOW_FLAG,
    MixedNumericsError,
    check_resume,
    numerics_meta,
    write_chunk,
)
from quant_envs.mixed_precision.tables.costs import hw_sim_costs
from quant_envs.mixed_precision.tasks import data_digest

KINDS = ("random", "trajectory")


def parse_bits(tokens: Sequence[str]) -> list[int]:
    """``["2..8"]`` -> ``[2, ..., 8]``; ``["2", "3", "4", "8"]`` as given."""
    out: list[int] = []
    for tok in tokens:
        if ".." in tok:
            lo, hi = (int(x) for x in tok.split("..", 1))
            out += list(range(lo, hi + 1))
        else:
            out.append(int(tok))
    if not out or sorted(set(out)) != out or out[0] < 1:
        raise ValueError(f"bits={list(tokens)!r} must give increasing widths >= 1, e.g. 2..8 or 2 3 4 8")
    return out


def random_budget(rng: np.random.Generator, costs: dict[str, dict[str, np.ndarray]],
                  levels: tuple[float, float]) -> tuple[str, str, float, np.ndarray]:
    """(hardware, metric, budget, per-unit cost) of a random instance."""
    hw = sorted(costs)[rng.integers(len(costs))]
    metrics = sorted(m for m, a in costs[hw].items() if np.all(np.isfinite(a)))
    metric = metrics[rng.integers(len(metrics))]
    cost = costs[hw][metric]
    lo, hi = cost.min(axis=1).sum(), cost.max(axis=1).sum()
    return hw, metric, float(lo + rng.uniform(*levels) * (hi - lo)), cost


def random_feasible(rng: np.random.Generator, cost: np.ndarray, budget: float) -> np.ndarray:
    """One width per unit, uniform among those leaving a feasible completion (a random agent)."""
    units = cost.shape[0]
    rest = np.concatenate([np.cumsum(cost.min(axis=1)[::-1])[::-1], [0.0]])
    spent, idx = 0.0, np.empty(units, dtype=int)
    for u in range(units):
        ok = np.flatnonzero(spent + cost[u] + rest[u + 1] <= budget * (1 + 1e-9))
        idx[u] = ok[rng.integers(len(ok))]
        spent += cost[u, idx[u]]
    return idx


def evolution(rng: np.random.Generator, proxy: np.ndarray, cost: np.ndarray, budget: float,
              population: int = 16, steps: int = 200, tournament: int = 4) -> list[np.ndarray]:
    """Regularised evolution on a separable proxy score (``proxy[unit, width]`` summed) under the
    budget: every policy visited, in order (infeasible mutants are not visited)."""
    units, nb = proxy.shape
    pop = [random_feasible(rng, cost, budget) for _ in range(population)]
    visited = list(pop)
    score = lambda p: float(proxy[np.arange(units), p].sum())  # noqa: E731
    for _ in range(steps):
        pick = rng.choice(len(pop), size=min(tournament, len(pop)), replace=False)
        parent = pop[max(pick, key=lambda i: score(pop[i]))]
        child = parent.copy()
        u = rng.integers(units)
        child[u] = rng.integers(nb)
        if cost[np.arange(units), child].sum() > budget * (1 + 1e-9):
            continue
        pop = pop[1:] + [child]
        visited.append(child)
    return visited


def unit_sensitivity(problem: Any) -> np.ndarray:
    """``[units, widths]`` validation accuracy with one unit quantized, the rest at the widest width,
    no retraining (the proxy of the trajectories)."""
    bits = problem.bits
    out = np.empty((problem.num_layers, len(bits)))
    for u in range(problem.num_layers):
        for j, b in enumerate(bits):
            pol = [(bits[-1], bits[-1])] * problem.num_layers
            pol[u] = (b, b)
            out[u, j] = problem.task.evaluate(problem.quantized_model(tuple(pol), finetune_steps=0), "val")
    return out


def plan(config: dict[str, Any], problem: Any) -> dict[str, np.ndarray]:
    """The seeded list of policies to evaluate (see the module docstring)."""
    rng = np.random.default_rng(config["seed"])
    costs, _ = hw_sim_costs(build.hw_layer_shapes(problem), tuple(config["bits"]))
    total = config["count"] + config["holdout"]
    n_traj = int(round(config["trajectory_share"] * total))
    levels = tuple(config["levels"])
    rows: list[tuple[np.ndarray, int, str, str, float]] = []
    seen: set[bytes] = set()

    def add(idx: np.ndarray, kind: int, hw: str, metric: str, budget: float) -> None:
        if idx.tobytes() not in seen:
            seen.add(idx.tobytes())
            rows.append((idx, kind, hw, metric, budget))

    proxy = np.zeros((problem.num_layers, len(config["bits"])))
    if n_traj:
        proxy = unit_sensitivity(problem)
        proxy = proxy - proxy.max()  # drops from the float-like policy (<= 0)
        per = max(1, config["per_trajectory"])
        while len(rows) < n_traj:
            hw, metric, budget, cost = random_budget(rng, costs, levels)
            visited = evolution(rng, proxy, cost, budget)
            best = max(range(len(visited)), key=lambda i: proxy[np.arange(len(cost)), visited[i]].sum())
            picks = sorted({*np.linspace(0, len(visited) - 1, per).round().astype(int).tolist(), best})
            for i in picks[: n_traj - len(rows)]:
                add(visited[i], 1, hw, metric, budget)
    tries = 0
    while len(rows) < total:
        hw, metric, budget, cost = random_budget(rng, costs, levels)
        add(random_feasible(rng, cost, budget), 0, hw, metric, budget)
        tries += 1
        if tries > 100 * total:
            raise ValueError(f"count={config['count']} distinct policies could not be drawn: the grid is too small")
    order = rng.permutation(len(rows))  # kinds interleaved, so any prefix of chunks is a mixed sample
    rows = [rows[i] for i in order]
    held = np.zeros(len(rows), dtype=bool)
    held[rng.choice(len(rows), size=config["holdout"], replace=False)] = True
    return {"idx": np.stack([r[0] for r in rows]).astype(np.int8), "kind": np.array([r[1] for r in rows], np.int8),
            "hardware": np.array([r[2] for r in rows]), "metric": np.array([r[3] for r in rows]),
            "budget": np.array([r[4] for r in rows]), "held_out": held, "proxy": proxy}


def _run_chunk(job: tuple[int, np.ndarray, str, bool]) -> tuple[int, int]:
    k, idx, path, allow_mixed = job
    problem: Any = build._PROBLEM
    bits = problem.bits
    values = np.array(build.evaluate_policies(problem, [tuple(bits[j] for j in row) for row in idx]), dtype=float)
    write_chunk(path, values, allow_mixed, build._FLOAT_SHA)
    return k, len(idx)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quant_envs.mixed_precision.tables.sample", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="mnist1d-cnn")
    parser.add_argument("--bits", nargs="+", default=["2..8"], help="widths: 2..8 or a list (2 3 4 8)")
    parser.add_argument("--count", type=int, required=True, help="training policies")
    parser.add_argument("--holdout", type=int, default=None, help="held-out policies (default count / 10)")
    parser.add_argument("--finetune-steps", type=int, default=None, help="default: the task's recipe")
    parser.add_argument("--eval-seed", type=int, default=0)
    parser.add_argument("--task-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="seeds the plan")
    parser.add_argument("--trajectory-share", type=float, default=0.3)
    parser.add_argument("--per-trajectory", type=int, default=20, help="policies taken from each trajectory")
    parser.add_argument("--levels", type=float, nargs=2, default=[0.05, 0.9], help="budget level range")
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(ALLOW_FLAG, action="store_true",
                        help="resume a work directory whose chunks were computed under other numerics")
    args = parser.parse_args(argv)
    try:
        bits = parse_bits(args.bits)
    except ValueError as e:
        parser.error(str(e))
    holdout = args.count // 10 if args.holdout is None else args.holdout
    if args.count < 1 or holdout < 0 or args.chunk < 1 or args.workers < 1 or not 0 <= args.trajectory_share <= 1:
        parser.error(f"--count={args.count} >= 1, --holdout={holdout} >= 0, --chunk={args.chunk} >= 1, "
                     f"--workers={args.workers} >= 1 and 0 <= --trajectory-share={args.trajectory_share} <= 1 needed")
    probe_cfg = {"task": args.task, "bits": bits, "finetune_steps": args.finetune_steps, "eval_seed": args.eval_seed,
                 "task_seed": args.task_seed}
    probe = build.config_problem({**probe_cfg, "finetune_steps": args.finetune_steps or 0})
    steps = probe.task.finetune_steps if args.finetune_steps is None else args.finetune_steps
    config = {**probe_cfg, "finetune_steps": int(steps), "count": args.count, "holdout": holdout, "seed": args.seed,
              "trajectory_share": args.trajectory_share, "per_trajectory": args.per_trajectory,
              "levels": list(args.levels), "chunk": args.chunk}
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    cfg_path = work / "config.json"
    if cfg_path.exists() and json.loads(cfg_path.read_text()) != config:
        parser.error(f"{work} holds a run with another configuration ({cfg_path.read_text()}); use another --work")
    try:
        check_resume(sorted(work.glob("chunk_*.npy")), args.allow_mixed_numerics, build.float_digest(probe))
    except MixedNumericsError as e:
        parser.error(str(e))
    atomic_write_json(cfg_path, config)
    plan_path = work / "plan.npz"
    if not plan_path.exists():
        p = plan(config, probe)
        with atomic_path(plan_path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **p)  # type: ignore[arg-type]
    with np.load(plan_path) as z:
        planned = {k: z[k] for k in z.files}
    idx = planned["idx"].astype(int)
    chunks = [(k, idx[s:s + args.chunk], str(work / f"chunk_{k:05d}.npy"), args.allow_mixed_numerics)
              for k, s in enumerate(range(0, len(idx), args.chunk))]
    todo = [c for c in chunks if not Path(c[2]).exists()]
    start = time.perf_counter()
    bar = tqdm(total=len(idx), initial=len(idx) - sum(len(c[1]) for c in todo), unit="policy", desc=args.task)
    build_cfg = {**config, "bits": bits}
    if args.workers == 1:
        build._init_worker(build_cfg)
        for job in todo:
            bar.update(_run_chunk(job)[1])
    else:
        with mp.get_context("spawn").Pool(args.workers, initializer=build._init_worker, initargs=(build_cfg,)) as pool:
            for _, n in pool.imap_unordered(_run_chunk, todo):
                bar.update(n)
    bar.close()
    wall = time.perf_counter() - start
    if todo:
        done = sum(len(c[1]) for c in todo)
        print(f"{done} policies in {wall:.1f} s ({wall / done:.3f} s per policy, {args.workers} worker(s))")
    results = np.concatenate([np.load(c[2]) for c in chunks])
    problem = build.config_problem(build_cfg)
    meta = {"generator": "quant_envs.mixed_precision.tables.sample",
            "command": " ".join(["python -m quant_envs.mixed_precision.tables.sample",
                                 *map(str, argv if argv is not None else sys.argv[1:])]),
            **config, "kinds": list(KINDS), "python": platform.python_version(), "machine": platform.machine(),
            "float_accuracy_val": float(problem.float_accuracy("val")),
            "float_sha256": state_digest(problem.task.model.state_dict(), {}), "data_sha256": data_digest(problem.task),
            **numerics_meta([c[2] for c in chunks]),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "layers": [la.name for la in problem.layers]}
    out = args.out or work / "samples.npz"
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, bits=np.asarray(bits), val_accuracy=results[:, 0], test_accuracy=results[:, 1],
                            meta=np.array(json.dumps(meta)), **planned)
    print(f"wrote {out} ({len(idx)} policies, {int(planned['held_out'].sum())} held out)")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    raise SystemExit(main())
