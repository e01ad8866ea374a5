"""Checks shared by the exhaustive accuracy tables' tests (digits-cnn, mnist1d-small): the live
problem a table records, its provenance keys, and a sample of its entries re-evaluated live."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quant_envs.mixed_precision.make_table import evaluate_policy, policy_grid

#: What every generated table's ``meta`` records about how it was made.
PROVENANCE_KEYS = ("generator", "command", "finetune_steps", "eval_seed", "task_seed", "torch", "created",
                   "float_accuracy_val", "float_accuracy_test", "hw_layer_shapes")


def live_problem(table: Any) -> Any:
    """The ``MixedPrecisionProblem`` with the table's recorded settings (task, widths, finetune
    steps, retraining seed, task seed), nothing cached."""
    from quant_envs.mixed_precision.problem import MixedPrecisionProblem

    m = table.meta
    return MixedPrecisionProblem(task=m["task"], bits=m["bits"], finetune_steps=m["finetune_steps"],
                                 eval_seed=m["eval_seed"], task_kwargs={"seed": m["task_seed"]}, cache_size=0)


def sample_matches(table: Any, live: Any, count: int, seed: int) -> None:
    """``count`` random entries of ``table`` retrained live give the table's validation and test
    accuracy, and the live problem's own ``evaluate`` agrees."""
    policies = policy_grid(table.bits, table.num_units)
    rng = np.random.default_rng(seed)
    for k in rng.choice(len(policies), size=count, replace=False):
        val, test = evaluate_policy(live, policies[k])
        assert val == pytest.approx(float(table.score.reshape(-1)[k]), abs=1e-9), policies[k]
        assert test == pytest.approx(float(table.columns["test_accuracy"].reshape(-1)[k]), abs=1e-9), policies[k]
        e = live.evaluate([(b, b) for b in policies[k]])  # the live environment's own path
        assert e.accuracy == pytest.approx(val, abs=1e-12)
