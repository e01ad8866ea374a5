"""The live check of a surrogate's optimum on the digits CNN at {2, 8} bits without retraining
steps: the optimum must be the best feasible policy of the scoring function (the reference: brute
force over the 16 policies), its live accuracy the one ``tables.build.evaluate_policy`` gives that
policy, and the verdicts follow their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from quant_envs.mixed_precision.tables import build
from quant_envs.mixed_precision.tables.costs import hw_sim_costs
from quant_envs.mixed_precision.tables.surrogate import SurrogateTable, iter_grid, policy_pairs
from quant_envs.mixed_precision.tables.surrogate_live import live_check

CONFIG = {"task": "digits-cnn", "bits": [2, 8], "finetune_steps": 0, "eval_seed": 0, "task_seed": 0}


def test_live_check_retrains_the_optimum() -> None:
    rng = np.random.default_rng(0)
    pr = policy_pairs(4, "adjacent")
    model = SurrogateTable("s", (2, 8), 4, "pairwise", 0.9, np.sort(rng.normal(size=(4, 2)) * 0.02, axis=1), pr,
                           rng.normal(size=(len(pr), 2, 2)) * 0.001,
                           meta={"source": {"task": "digits-cnn", "finetune_steps": 0, "task_seed": 0}})
    _, idx = next(iter_grid(2, 4, 16))
    samples = {"idx": idx, "y": np.full(16, 0.5)}  # every sampled policy at 50%: the optimum beats them
    c = live_check(model, samples, "bismo-edge", "latency", 0.5, seeds=(0, 1))
    problem = build.config_problem(CONFIG)
    cost = hw_sim_costs(build.hw_layer_shapes(problem), (2, 8))[0]["bismo-edge"]["latency"]
    lo, hi = cost.min(axis=1).sum(), cost.max(axis=1).sum()
    ok = cost[np.arange(4), idx].sum(axis=1) <= (lo + 0.5 * (hi - lo)) * (1 + 1e-9)
    best = idx[ok][np.argmax(model.scores(idx[ok]))]
    assert c.policy == [(2, 8)[k] for k in best] and c.method == "enumeration"
    assert c.surrogate == pytest.approx(100 * model.score(best))
    live = 100 * build.evaluate_policy(problem, c.policy)[0]
    assert c.live == [live, live]  # no retraining steps: the seeds cannot differ
    assert c.best_sampled == pytest.approx(50.0) and c.not_worse
    assert c.close == (abs(live - c.surrogate) <= 0.5)
