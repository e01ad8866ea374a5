"""Checks shared by the exhaustive accuracy tables' tests (digits-cnn, mnist1d-small): the live
problem a table records, its provenance keys, and a sample of its entries re-evaluated live.

The live problem retrains from the table's own shipped float network (``tables.live``). With the
numerics that made the table (``tables.live.numerics``: torch, CPU kernels' instruction set, CPU
model) an entry must repeat bit for bit; elsewhere the kernels round differently and the short
retraining may move an entry by up to ``tables.live.CROSS_CPU_SAMPLES`` samples of its split
(measured: docs/reproducibility.md, "Tables"), and by no more: a stale table or a changed retraining
moves entries further.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quant_envs.mixed_precision.tables.live import (
    allowed_samples,
    describe_numerics,
    live_problem,
    recheck,
)

__all__ = ["PROVENANCE_KEYS", "accuracy_tolerance", "checked_env", "live_problem", "numerics", "same_episodes",
           "sample_matches"]

#: What every generated table's ``meta`` records about how it was made.
PROVENANCE_KEYS = ("generator", "command", "finetune_steps", "eval_seed", "task_seed", "torch", "created",
                   "float_accuracy_val", "float_accuracy_test", "hw_layer_shapes", "cpu_capability", "cpu_model",
                   "float_sha256", "data_sha256")


def accuracy_tolerance(table: Any, split_size: int) -> float:
    """How far a live re-evaluation of an entry may be from ``table``'s on this machine: nothing
    (1e-9) with the table's numerics, ``CROSS_CPU_SAMPLES`` samples of a split of ``split_size`` elsewhere."""
    return allowed_samples(table) / split_size + 1e-9


def numerics(table: Any) -> str:
    """Where the table's numbers were made and where they are re-evaluated: retraining repeats
    bit for bit only with the same torch CPU kernels, so a mismatch on another CPU kind says so."""
    return describe_numerics(table)


def sample_matches(table: Any, live: Any, count: int, seed: int) -> None:
    """``count`` random entries of ``table`` retrained live give the table's validation and test
    accuracy, and the live problem's own ``evaluate`` agrees."""
    where = numerics(table)
    tol = {"val": accuracy_tolerance(table, len(live.task.val_set)),
           "test": accuracy_tolerance(table, len(live.task.test_set))}
    rows = recheck(table, count, seed, problem=live)
    assert len(rows) == count
    for r in rows:
        for split in ("val", "test"):
            assert r["live"][split] == pytest.approx(r["table"][split], abs=tol[split]), (r["policy"], split, where)
        e = live.evaluate([(b, b) for b in r["policy"]])  # the live environment's own path
        assert e.accuracy == pytest.approx(r["live"]["val"], abs=1e-12)


def same_episodes(env_t: Any, env_l: Any, episodes: int) -> None:
    """A table environment and the live one it was made from, stepped with the same random allowed
    widths, show the same observations, masks, rewards and evaluated accuracy and costs (accuracy
    and reward within ``accuracy_tolerance``)."""
    table = env_t.unwrapped.table
    acc_tol = accuracy_tolerance(table, len(env_l.unwrapped.problem.task.val_set))
    reward_tol = env_t.unwrapped.reward_scale * table.score_scale * acc_tol
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
        assert r_t == pytest.approx(r_l, abs=reward_tol), numerics(table)
        for key in ("accuracy", "float_accuracy"):
            assert info_t[key] == pytest.approx(info_l[key], abs=acc_tol), (key, numerics(table))
        for key in ("latency_s", "energy_j", "size_bytes", "budget_used"):
            assert info_t[key] == pytest.approx(info_l[key], rel=1e-9, abs=1e-12), key
        assert info_t["regret"] >= 0


def checked_env(env: Any, seed: int) -> dict[str, Any]:
    """``env`` passes Gymnasium's and SB3's checkers (a checker warning is a failure), and two
    episodes from the same seed with the same random allowed actions are the same: observations,
    reward, regret and evaluation cost. Returns the last step's ``info``."""
    import warnings

    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env.unwrapped, warn=True)
    episodes = []
    for _ in range(2):
        obs, _ = env.reset(seed=seed)
        rng, done, trace, info, r = np.random.default_rng(seed), False, [obs], {}, 0.0
        while not done:
            a = int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
            obs, r, term, trunc, info = env.step(a)
            trace.append(obs)
            done = term or trunc
        episodes.append((r, info["regret"], info.get("eval_cost_cpu_s"), np.stack(trace), info))
    assert episodes[0][:3] == episodes[1][:3] and episodes[0][1] >= 0
    np.testing.assert_array_equal(episodes[0][3], episodes[1][3])
    return episodes[0][4]
