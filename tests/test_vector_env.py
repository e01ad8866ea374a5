"""The batched vector environment and the SB3 adapter against Gymnasium's SyncVectorEnv and SB3's DummyVecEnv.

The reference for every step is the library's own vectoriser run on the same environments: the
batched ones must return the same observations, rewards, terminations and infos (the wall-clock
``eval_time_s`` aside), while scoring the rewards due together through ``evaluate_many``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import quant_envs
from quant_envs.mixed_precision.vector_env import (
    MixedPrecisionContinuousVectorEnv,
    MixedPrecisionVectorEnv,
)

# cache_size=0: no cache hit anywhere, so one problem (vector env) and several (SyncVectorEnv) agree
KWARGS = {"task": "digits-cnn", "finetune_steps": 1, "cache_size": 0, "share_problem": False}
ID = "quant_envs/MixedPrecision-v1"


def _strip(infos: dict) -> dict:
    return {k: v for k, v in infos.items() if k not in ("eval_time_s", "_eval_time_s")}


def _assert_infos_equal(a: dict, b: dict) -> None:
    a, b = _strip(a), _strip(b)
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _assert_infos_equal(a[key], b[key])
        else:
            assert gym.utils.env_checker.data_equivalence(a[key], b[key]), key


def _masked_actions(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.choice(np.flatnonzero(m)) for m in masks])


def _run_both(batched: gym.vector.VectorEnv, reference: gym.vector.VectorEnv, steps: int, seed: int) -> None:
    obs_b, info_b = batched.reset(seed=seed)
    obs_r, info_r = reference.reset(seed=seed)
    assert np.array_equal(obs_b, obs_r)
    _assert_infos_equal(info_b, info_r)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        masks = batched.action_masks()
        assert np.array_equal(masks, np.stack(reference.call("action_masks")))
        actions = _masked_actions(masks, rng)
        out_b, out_r = batched.step(actions), reference.step(actions)
        for x, y in zip(out_b[:4], out_r[:4]):
            assert np.array_equal(x, y)
        assert batched.observation_space.contains(out_b[0])
        _assert_infos_equal(out_b[4], out_r[4])


def test_make_vec_builds_the_batched_environment() -> None:
    assert quant_envs.ENV_VECTOR_ENTRY_POINTS.keys() <= quant_envs.ENV_IDS.keys()
    env = gym.make_vec(ID, num_envs=3, vectorization_mode="vector_entry_point", **KWARGS)
    assert isinstance(env, MixedPrecisionVectorEnv) and env.num_envs == 3
    assert env.action_masks().shape == (3, len(env.problem.bits))
    assert len({id(e.problem) for e in env.envs}) == 1  # the copies share one problem
    check_env(env.envs[1])  # each copy is a valid single environment (Gymnasium's checker)
    cont = gym.make_vec("quant_envs/MixedPrecisionContinuous-v1", num_envs=2, vectorization_mode="vector_entry_point",
                        **KWARGS)
    assert isinstance(cont, MixedPrecisionContinuousVectorEnv)
    with pytest.raises(ValueError, match="num_envs"):
        MixedPrecisionVectorEnv(num_envs=0, **KWARGS)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_the_batched_env_steps_as_sync_vector_env(mode: AutoresetMode) -> None:
    batched = MixedPrecisionVectorEnv(num_envs=3, autoreset_mode=mode, **KWARGS)
    reference = SyncVectorEnv([lambda: gym.make(ID, **KWARGS).unwrapped for _ in range(3)], autoreset_mode=mode)
    steps = 2 * batched.envs[0].num_steps + 2  # two episodes each, and the autoresets between them
    _run_both(batched, reference, steps, seed=5)
    # every terminal reward went through evaluate_many: 3 copies x 2 episodes
    assert batched.num_prefetched == 6
    assert batched.problem.num_evaluations == 6


def test_same_seed_same_run_and_cache_hits_as_one_by_one() -> None:
    kwargs = {**KWARGS, "cache_size": 64}

    def run() -> tuple[list, Any]:
        env = MixedPrecisionVectorEnv(num_envs=4, **kwargs)
        env.reset(seed=0)
        out = []
        for _ in range(env.envs[0].num_steps):
            obs, rew, term, _, infos = env.step(np.zeros(4, dtype=int))  # the same policy in every copy
            out.append((obs.tolist(), rew.tolist(), term.tolist(), infos.get("cached", np.zeros(4)).tolist()))
        return out, env.problem

    (first, problem), (second, _) = run(), run()
    assert first == second
    # four copies end with the same policy on the same step: one retraining, three cache hits, as
    # SyncVectorEnv would step them one by one; info["cached"] is each copy's own history
    assert (problem.num_evaluations, problem.num_queries) == (1, 4)
    assert first[-1][3] == [False, False, False, False]


def test_sb3_adapter_gives_dummy_vec_envs_steps_and_masks() -> None:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    from agents.vec_env import BatchedRewardVecEnv

    def build(cls):
        return make_vec_env(ID, n_envs=3, seed=1, env_kwargs={**KWARGS, "share_problem": True}, vec_env_cls=cls)

    batched, reference = build(BatchedRewardVecEnv), build(DummyVecEnv)
    assert np.array_equal(batched.reset(), reference.reset())
    rng = np.random.default_rng(1)
    steps = 2 * batched.get_attr("num_steps")[0] + 1
    for _ in range(steps):
        masks = np.stack(batched.env_method("action_masks"))
        actions = _masked_actions(masks, rng)
        obs_b, rew_b, done_b, infos_b = batched.step(actions)
        obs_r, rew_r, done_r, infos_r = reference.step(actions)
        assert np.array_equal(obs_b, obs_r) and np.array_equal(rew_b, rew_r) and np.array_equal(done_b, done_r)
        for ib, ir in zip(infos_b, infos_r):
            assert {k: v for k, v in ib.items() if k not in ("eval_time_s", "episode")}.keys() == \
                {k: v for k, v in ir.items() if k not in ("eval_time_s", "episode")}.keys()
            assert ib.get("accuracy") == ir.get("accuracy")
    assert batched.num_prefetched == 6


def test_maskable_ppo_with_batched_envs_is_reproducible() -> None:
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.env_util import make_vec_env

    from agents.vec_env import BatchedRewardVecEnv

    def train() -> tuple[list, int]:
        env = make_vec_env(ID, n_envs=4, seed=3, env_kwargs={**KWARGS, "finetune_steps": 0},
                           vec_env_cls=BatchedRewardVecEnv)
        model = MaskablePPO("MlpPolicy", env, n_steps=8, batch_size=16, n_epochs=1, seed=3, device="cpu")
        model.learn(total_timesteps=64)
        return [p.detach().clone() for p in model.policy.parameters()], env.num_prefetched

    (first, n1), (second, n2) = train(), train()
    assert n1 == n2 > 0
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, second))
