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


def numerics(table: Any) -> str:
    """Where the table's numbers were made and where they are re-evaluated: retraining repeats
    bit for bit only with the same torch CPU kernels, so a mismatch on another CPU kind says so."""
    import torch

    made = table.meta.get("cpu_capability", "not recorded")
    return (f"table made with torch {table.meta.get('torch')} on CPU capability {made}; this machine: torch "
            f"{torch.__version__}, {torch.backends.cpu.get_cpu_capability()}")


def sample_matches(table: Any, live: Any, count: int, seed: int) -> None:
    """``count`` random entries of ``table`` retrained live give the table's validation and test
    accuracy, and the live problem's own ``evaluate`` agrees."""
    policies = policy_grid(table.bits, table.num_units)
    rng = np.random.default_rng(seed)
    where = numerics(table)
    for k in rng.choice(len(policies), size=count, replace=False):
        val, test = evaluate_policy(live, policies[k])
        assert val == pytest.approx(float(table.score.reshape(-1)[k]), abs=1e-9), (policies[k], where)
        assert test == pytest.approx(float(table.columns["test_accuracy"].reshape(-1)[k]), abs=1e-9), (policies[k], where)
        e = live.evaluate([(b, b) for b in policies[k]])  # the live environment's own path
        assert e.accuracy == pytest.approx(val, abs=1e-12)


def same_episodes(env_t: Any, env_l: Any, episodes: int) -> None:
    """A table environment and the live one it was made from, stepped with the same random allowed
    widths, show the same observations, masks, rewards and evaluated accuracy and costs."""
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        obs_t, _ = env_t.reset()
        obs_l, _ = env_l.reset()
        done = False
        while not done:
            np.testing.assert_allclose(obs_t, obs_l, rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(env_t.action_masks(), env_l.action_masks())
            a = int(rng.choice(np.flatnonzero(env_t.action_masks())))
            obs_t, r_t, done, _, info_t = env_t.step(a)
            obs_l, r_l, _, _, info_l = env_l.step(a)
        np.testing.assert_allclose(obs_t, obs_l, rtol=1e-5, atol=1e-6)
        assert r_t == pytest.approx(r_l, abs=1e-9), numerics(env_t.unwrapped.table)
        for key in ("accuracy", "float_accuracy", "latency_s", "energy_j", "size_bytes", "budget_used"):
            assert info_t[key] == pytest.approx(info_l[key], rel=1e-9, abs=1e-12), key
        assert info_t["regret"] >= 0
