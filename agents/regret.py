"""Regret of RL agents on table benchmarks: ``train.py`` runs as run records, added to a regret study.

The regret arithmetic (run records, best-so-far regret curves, confidence intervals, plots) lives in
:mod:`quant_envs.mixed_precision.tables.regret`, beside the tables' exact optima, and is re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.training import train
from baselines.mixed_precision.regret import MethodRuns
from quant_envs.mixed_precision.tables.regret import (  # noqa: F401  (re-exported)
    CHECKPOINTS,
    RegretPoint,
    RunRecord,
    best_so_far_regret,
    confidence_interval,
    plot_regret,
    record_from_episodes,
    regret_curves,
    summarize,
)


def train_records(env_kwargs: Mapping, algo: str, seeds: Sequence[int], max_evaluations: int,
                  timesteps: int, out: str | os.PathLike[str], env_id: str = "quant_envs/MixedPrecisionTable-v0",
                  ) -> tuple[list[RunRecord], float]:
    """Train ``algo`` once per seed with ``train.py``'s :func:`agents.training.train` (stopping at
    ``max_evaluations`` reward evaluations or ``timesteps`` steps) and return each run's record
    (from its ``evaluations.csv``) and the wall time of all runs (s)."""
    import csv
    import time

    records, start = [], time.perf_counter()
    for seed in seeds:
        run_dir = Path(out) / f"{algo}-s{seed}"
        train(env_id=env_id, algo=algo, timesteps=timesteps, seed=int(seed), env_kwargs=dict(env_kwargs),
              out=run_dir, max_evaluations=max_evaluations, progress_bar=False, test_best=False, verbose=False,
              force=True)  # the study owns these folders: a rerun replaces its runs
        with open(run_dir / "evaluations.csv", newline="") as f:
            records.append(record_from_episodes(list(csv.DictReader(f))))
    return records, time.perf_counter() - start



def add_agent_runs(study: Any, setting: dict[str, Any], algo: str, out: str | Path,
                   timesteps_per_evaluation: int = 5) -> None:
    """Add an RL agent's runs (``train.py`` on the table environment, same seeds and allowance) to
    ``study``; each run is capped at ``timesteps_per_evaluation * max_evaluations`` episodes' steps."""
    p = study.problem
    kwargs = {k: v for k, v in setting.items()}
    timesteps = timesteps_per_evaluation * study.max_evaluations * p.num_layers
    records, wall = train_records(kwargs, algo, study.seeds, study.max_evaluations, timesteps, out)

    curves = regret_curves(records, p.optimum.score, p.optimum.worst_score, study.max_evaluations,
                           p.table.score_scale)
    study.runs[algo] = MethodRuns(algo, curves, wall, [float(c[-1]) for c in curves], [len(r.scores) for r in records])


