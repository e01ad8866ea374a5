#!/usr/bin/env python
"""Train an agent on a quant_envs environment, or compare agents against a problem's non-RL solvers.

    python train.py                                   # a short default search on the default task
    python train.py --env quant_envs/MixedPrecision-v0 --algo maskable_ppo --timesteps 2000 --seed 0 \\
        --env-kwargs budget_fraction=0.25 finetune_steps=20
    python train.py --resume --out runs/my-run        # continue an interrupted run
    python train.py compare --env quant_envs/MixedPrecision-v0 --agents maskable_ppo \\
        --baselines uniform random hawq_v3 --seeds 5 --max-evaluations 200
    python train.py compare --env quant_envs/SplineCompander-v1 --agents ppo --seeds 5   # any problem's id

The same command is installed as ``quant-envs-train`` (works outside the repository).

A run writes into ``--out`` (default ``runs/<env>/<algo>-s<seed>``): ``best_policy.json``,
``evaluations.csv`` (every finished episode), ``summary.png``, ``model.zip``, ``checkpoints/``
(``--resume`` continues from there) and ``logs/part-<k>/`` (SB3's CSV and TensorBoard logs; a new
part per resume, so nothing is overwritten). Every file is written atomically.

This file is a thin entry point: training lives in ``agents.training``, comparison in
``agents.comparison`` (plan, backends, per-problem adapters and report in ``agents.compare_*``),
the command line in ``agents.cli``.
"""

from __future__ import annotations

import sys

from agents.cli import main
from agents.comparison import DEFAULT_BASELINES, MIXED_PRECISION_IDS, compare
from agents.comparison import run_one as _run_one  # noqa: F401  (kept for Ray Tune trainables written against it)
from agents.runs import DEFAULT_ENV, UsageError
from agents.training import TRAIN_DEFAULTS, train

__all__ = ["DEFAULT_BASELINES", "DEFAULT_ENV", "MIXED_PRECISION_IDS", "TRAIN_DEFAULTS", "UsageError", "compare",
           "main", "train"]

if __name__ == "__main__":
    sys.exit(main())
