"""MixedPrecision-v0 / MixedPrecisionContinuous-v0: exact masks, outcomes, budgets, rewards, agents."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import quant_envs  # noqa: F401  (registers the ids)
from quant_envs.mixed_precision.env import (
    MixedPrecisionContinuousEnv,
    MixedPrecisionEnv,
    haq_lower_to_budget,
)

TINY = {"task": "digits-cnn", "finetune_steps": 0}


def make(**kw) -> MixedPrecisionEnv:
    return MixedPrecisionEnv(**{**TINY, **kw})


def _feasible_completion_exists(env: MixedPrecisionEnv, prefix: list[int]) -> bool:
    """Brute force, independent of hw_sim's completion costs: is there any full policy extending
    ``prefix`` (action indices of the steps taken) within budget?"""
    p = env.problem
    nb, L = len(p.bits), p.num_layers
    table = p.layer_costs(p.budget_metric)
    two = env.two_steps_per_layer
    for rest in itertools.product(range(nb), repeat=env.num_steps - len(prefix)):
        acts = prefix + list(rest)
        pairs = [(acts[2 * i], acts[2 * i + 1]) for i in range(L)] if two else [(a, a) for a in acts]
        if all(p.allowed[i, w, a] for i, (w, a) in enumerate(pairs)):
            if sum(table[i, w, a] for i, (w, a) in enumerate(pairs)) <= p.budget * (1 + 1e-9):
                return True
    return False


@pytest.mark.parametrize("two_steps", [False, True])
@pytest.mark.parametrize("fraction", [0.3, 0.5])
def test_mask_is_exact_against_brute_force(two_steps: bool, fraction: float) -> None:
    # 4 layers x 7 widths: every prefix of one-step episodes (7^4 completions) is enumerable; in two-step
    # mode we check the first four steps' prefixes exhaustively and the rest along random paths.
    env = make(two_steps_per_layer=two_steps, budget_fraction=fraction, bits=(2, 4, 6, 8) if two_steps else tuple(range(2, 9)))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    nb = len(env.bits)
    checked = 0
    for _episode in range(6):
        env.reset()
        prefix: list[int] = []
        for _t in range(env.num_steps):
            mask = env.action_masks()
            for j in range(nb):
                assert mask[j] == _feasible_completion_exists(env, prefix + [j]), (prefix, j, mask)
                checked += 1
            j = int(rng.choice(np.flatnonzero(mask)))
            _, _, terminated, _, info = env.step(j)
            prefix.append(j)
        assert terminated and info["budget_used"] <= 1 + 1e-9
    assert checked >= 6 * env.num_steps * nb


def test_random_steps_give_only_documented_outcomes() -> None:
    # 10^4 random actions, masked ones included, in both invalid-action modes.
    for mode in ("project", "raise"):
        env = make(invalid_action=mode, budget_fraction=0.25)
        env.reset(seed=1)
        rng = np.random.default_rng(1)
        counts = {"ok": 0, "projected": 0, "raised": 0, "episodes": 0}
        for _ in range(5_000):
            mask = env.action_masks()
            j = int(rng.integers(len(env.bits)))
            try:
                obs, reward, terminated, truncated, info = env.step(j)
            except ValueError as exc:
                assert mode == "raise" and not mask[j]
                assert "is masked" in str(exc) and "allowed actions" in str(exc)
                counts["raised"] += 1
                continue
            assert env.observation_space.contains(obs)
            assert not truncated
            if mask[j]:
                assert "projected_from" not in info
                counts["ok"] += 1
            else:
                assert mode == "project" and info["projected_from"] == j
                counts["projected"] += 1
            if terminated:
                assert info["budget_used"] <= 1 + 1e-9 and 0.0 <= info["accuracy"] <= 1.0
                assert reward == pytest.approx(0.1 * 100 * (info["accuracy"] - info["float_accuracy"]))
                counts["episodes"] += 1
                env.reset()
            else:
                assert reward == 0.0
        assert counts["episodes"] > 100
        assert counts["projected" if mode == "project" else "raised"] > 100


def test_out_of_range_action_is_a_clear_error() -> None:
    env = make()
    env.reset(seed=0)
    for bad in (-1, 7, 2.5, "4"):
        with pytest.raises(ValueError, match="action="):
            env.step(bad)


def test_step_after_end_is_an_error() -> None:
    env = make()
    env.reset(seed=0)
    for _ in range(env.num_steps):
        env.step(int(np.flatnonzero(env.action_masks())[-1]))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_infeasible_budget_states_the_feasible_range() -> None:
    with pytest.raises(ValueError, match=r"infeasible.*feasible budgets are >=.*budget_fraction >="):
        make(budget_fraction=0.001)
    with pytest.raises(ValueError, match="budget_metric="):
        make(budget_metric="area")
    with pytest.raises(ValueError, match="hardware="):
        make(hardware="tpu-v9")
    with pytest.raises(ValueError, match="invalid_action="):
        make(invalid_action="ignore")


def test_budget_at_the_cheapest_cost_allows_only_cheapest_widths() -> None:
    p = make(budget_fraction=0.5).problem
    cheapest = p.uniform_policy(min(p.bits))
    env = make(budget=p.cost(cheapest)[p.budget_metric])
    env.reset(seed=0)
    table = p.layer_costs(p.budget_metric)
    for i in range(env.num_steps):
        mask = env.action_masks()
        assert mask[0]
        # any other allowed width must cost no more than the narrowest at this layer
        for j in np.flatnonzero(mask):
            assert table[i, j, j] <= table[i, 0, 0] * (1 + 1e-9)
        _, _, terminated, _, info = env.step(0)
    assert terminated and tuple(map(tuple, info["policy"])) == cheapest


def test_reward_is_accuracy_change_and_policy_in_info() -> None:
    env = make(budget_fraction=1.0)
    env.reset(seed=0)
    for _ in range(env.num_steps):
        _, reward, terminated, _, info = env.step(len(env.bits) - 1)  # all 8-bit
    assert terminated
    assert info["policy"] == [[8, 8]] * env.num_layers
    for key in ("accuracy", "float_accuracy", "latency_s", "energy_j", "size_bytes", "latency_fraction",
                "energy_fraction", "size_fraction", "budget_used", "cached"):
        assert key in info
    assert "eval_time_s" not in info  # wall clock: the attribute last_eval_time_s, never info
    assert info["latency_fraction"] == pytest.approx(1.0) and info["size_fraction"] == pytest.approx(1.0)
    # 8-bit post-training quantization of the tiny CNN stays within 2 points of float
    assert abs(info["accuracy"] - info["float_accuracy"]) < 0.02
    assert reward == pytest.approx(10 * (info["accuracy"] - info["float_accuracy"]))


def test_same_policy_is_answered_from_the_cache() -> None:
    env = make(finetune_steps=5, eval_seed=123)
    results = []
    for _ in range(2):
        env.reset(seed=0)
        for _ in range(env.num_steps):
            _, r, _, _, info = env.step(int(np.flatnonzero(env.action_masks())[-1]))
        results.append((r, info))
    (r1, i1), (r2, i2) = results
    assert not i1["cached"] and i2["cached"] and r1 == r2 and i1["accuracy"] == i2["accuracy"]


def test_two_steps_per_layer_sets_weights_then_activations() -> None:
    env = make(two_steps_per_layer=True, budget_fraction=1.0)
    obs, _ = env.reset(seed=0)
    assert env.num_steps == 2 * env.num_layers
    flags = []
    for t in range(env.num_steps):
        flags.append(obs[8])
        obs, _, terminated, _, info = env.step(t % len(env.bits) if t % 2 == 0 else 0)
    assert flags == [1.0, 0.0] * env.num_layers
    assert [a for _, a in info["policy"]] == [2] * env.num_layers


def test_keep_first_last_8bit() -> None:
    env = make(keep_first_last_8bit=True, budget_fraction=0.8)
    env.reset(seed=0)
    masks = []
    for _ in range(env.num_steps):
        masks.append(env.action_masks())
        _, _, terminated, _, info = env.step(0)
    assert masks[0].tolist() == [False] * 6 + [True] and masks[-1].tolist() == [False] * 6 + [True]
    assert info["policy"][0] == [8, 8] and info["policy"][-1] == [8, 8]


def test_observation_features() -> None:
    env = make(budget_fraction=0.5)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (13,)
    assert obs[0] == 0.0 and obs[12] == 1.0 and obs[9] == 1.0
    p = env.problem
    # weight std feature: the layer's std over the largest, computed here from the torch weights
    stds = [float(p.task.model.get_submodule(layer.name).weight.std()) for layer in p.layers]
    assert obs[10] == pytest.approx(stds[0] / max(stds), rel=1e-5)
    obs, *_ = env.step(0)
    spent = p.layer_costs(p.budget_metric)[0, 0, 0]
    assert obs[12] == pytest.approx(1 - spent / p.budget, rel=1e-5)
    assert obs[9] == 0.0 and obs[0] == pytest.approx(1 / (p.num_layers - 1))


def test_budget_metrics_energy_and_size() -> None:
    for metric in ("energy", "size"):
        env = make(budget_metric=metric, budget_fraction=0.4)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        for _ in range(env.num_steps):
            _, _, terminated, _, info = env.step(int(rng.choice(np.flatnonzero(env.action_masks()))))
        assert info[f"{metric}_fraction"] <= 0.4 + 1e-9


def test_render_modes() -> None:
    env = make(render_mode="ansi")
    env.reset(seed=0)
    env.step(3)
    text = env.render()
    assert "layer" in text and "budget" in text and len(text.splitlines()) == env.num_layers + 2
    env = make(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def test_action_masks_through_gym_make_and_vec_env() -> None:
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env

    env = gym.make("quant_envs/MixedPrecision-v0", **TINY, budget_fraction=0.3)
    env.reset(seed=0)
    direct = env.unwrapped.action_masks()
    assert np.array_equal(env.get_wrapper_attr("action_masks")(), direct)
    vec = make_vec_env("quant_envs/MixedPrecision-v0", n_envs=2, seed=0, env_kwargs={**TINY, "budget_fraction": 0.3})
    vec.reset()
    masks = get_action_masks(vec)
    assert masks.shape == (2, 7) and np.array_equal(masks[0], direct)


def test_maskable_ppo_never_chooses_a_masked_action() -> None:
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback

    class CheckMasks(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.steps = 0

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                assert "projected_from" not in info
            self.steps += 1
            return True

    env = gym.make("quant_envs/MixedPrecision-v0", **TINY, budget_fraction=0.3, invalid_action="raise")
    model = MaskablePPO("MlpPolicy", env, n_steps=256, batch_size=64, seed=0, verbose=0, device="cpu")
    callback = CheckMasks()
    model.learn(2048, callback=callback)  # invalid_action="raise": a masked action would stop training
    assert callback.steps >= 2048


def test_continuous_env_maps_onto_allowed_widths() -> None:
    env = MixedPrecisionContinuousEnv(**TINY, budget_fraction=0.3)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        mask = env.action_masks()
        u = rng.uniform(0, 1)
        allowed = np.flatnonzero(mask)
        expected = allowed[min(int(u * len(allowed)), len(allowed) - 1)]
        i = env._layer
        _, _, terminated, _, info = env.step(np.array([u], dtype=np.float32))
        assert env._w_idx[i] == expected or terminated
        if terminated:
            assert info["budget_used"] <= 1 + 1e-9
            env.reset()


def _haq_final_action_wall(strategy: list[list[int]], lookup: np.ndarray, target: float, min_bit: int,
                           keep_first_last: bool) -> list[list[int]]:
    """A transcription of HAQ's ``LinearQuantizeEnv._final_action_wall`` (mit-han-lab/haq,
    lib/env/linear_quantize_env.py, commit 20e4ed3): ``lookup[i, w - 1, a - 1]`` is layer i's cost;
    ``_keep_first_last_layer`` resets the first and last layers to 8 bits (HAQ sets the first
    layer's activation to -1, "input already 8 bit"; here both stay 8, as our fixed layers do)."""

    def cur_cost() -> float:
        return sum(lookup[i, w - 1, a - 1] for i, (w, a) in enumerate(strategy))

    def keep_first_last_layer() -> None:
        if keep_first_last:
            strategy[0][0] = strategy[0][1] = strategy[-1][0] = strategy[-1][1] = 8

    min_cost = sum(lookup[i, min_bit - 1, min_bit - 1] for i in range(len(strategy)))
    if keep_first_last:  # HAQ's loop would never end on fixed layers; its _min_cost keeps them at 8
        min_cost = sum(lookup[i, 7, 7] if i in (0, len(strategy) - 1) else lookup[i, min_bit - 1, min_bit - 1]
                       for i in range(len(strategy)))
    while min_cost < cur_cost() and target < cur_cost():
        for i, n_bit in enumerate(reversed(strategy)):
            if n_bit[1] > min_bit:
                strategy[-(i + 1)][1] -= 1
            keep_first_last_layer()
            if target >= cur_cost():
                break
            if n_bit[0] > min_bit:
                strategy[-(i + 1)][0] -= 1
            keep_first_last_layer()
            if target >= cur_cost():
                break
    return strategy


@pytest.mark.parametrize("keep_first_last", [False, True])
def test_haq_rule_matches_a_transcription_of_haqs_final_action_wall(keep_first_last: bool) -> None:
    # digits-mbnet (10 layers), where the old first-to-last rule was found wrong.
    p = MixedPrecisionEnv(task="digits-mbnet", finetune_steps=0, budget_fraction=0.3,
                          keep_first_last_8bit=keep_first_last).problem
    lookup = np.zeros((p.num_layers, 8, 8))
    lookup[:, 1:, 1:] = p.layer_costs(p.budget_metric)  # bits 2..8 at HAQ's index bit - 1
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(200):
        policy = [[int(b) for b in rng.integers(2, 9, size=2)] for _ in range(p.num_layers)]
        if keep_first_last:
            policy[0] = [8, 8]
            policy[-1] = [8, 8]
        expected = _haq_final_action_wall([list(x) for x in policy], lookup, p.budget * (1 + 1e-9), 2,
                                          keep_first_last)
        got = haq_lower_to_budget(p, tuple(map(tuple, policy)))
        assert [list(x) for x in got] == expected
        assert p.is_feasible(got)
        changed += got != tuple(map(tuple, policy))
    assert changed > 100  # the budget binds on most random policies: the rule is exercised


def test_haq_budget_enforcement_evaluates_the_lowered_policy() -> None:
    env = MixedPrecisionContinuousEnv(**TINY, budget_fraction=0.3, budget_enforcement="haq")
    env.reset(seed=0)
    for _ in range(env.num_steps):
        _, _, terminated, _, info = env.step(np.ones(1, dtype=np.float32))  # ask for 8 bits everywhere
    assert terminated and info["budget_used"] <= 1 + 1e-9
    p = env.problem
    assert tuple(map(tuple, info["policy"])) == haq_lower_to_budget(p, p.uniform_policy(8))
    # last-to-first, activations first: the last layer's activations are lowered before any weight
    assert info["policy"][-1][1] <= info["policy"][-1][0]


def test_ddpg_haq_replay_buffer_is_haqs_128_transitions_per_layer() -> None:
    from agents.ddpg_haq import HAQDDPG

    # HAQ's rl_quantize.py: rmsize default 128 ("memory size for each layer") x len(env.quantizable_idx)
    env = gym.make("quant_envs/MixedPrecisionContinuous-v1", **TINY, budget_fraction=0.5, two_steps_per_layer=True)
    model = HAQDDPG("MlpPolicy", env, seed=0)
    assert model.buffer_size == 128 * env.unwrapped.num_layers == 512
    assert HAQDDPG("MlpPolicy", env, seed=0, buffer_size=100).buffer_size == 100  # an explicit size wins


def _last_widths_episode(env: MixedPrecisionEnv) -> tuple[float, dict]:
    env.reset(seed=0)
    for _ in range(env.num_steps):
        _, r, _, _, info = env.step(int(np.flatnonzero(env.action_masks())[-1]))
    return r, info


def test_cached_is_this_instances_history_not_the_shared_cache() -> None:
    """Two instances share one problem (one evaluation cache): the second's first episode is not
    retrained (the problem's evaluation count stays 1) yet its info says cached=False, exactly as
    the first instance's did: info is a function of the instance's own history."""
    first, second = make(finetune_steps=3, eval_seed=321), make(finetune_steps=3, eval_seed=321)
    assert first.problem is second.problem
    before = first.problem.num_evaluations
    r1, i1 = _last_widths_episode(first)
    assert first.last_eval_time_s > 0.0  # it retrained and evaluated
    r2, i2 = _last_widths_episode(second)
    assert first.problem.num_evaluations == before + 1  # the second answer came from the shared cache
    assert second.last_eval_time_s == 0.0
    assert not i1["cached"] and not i2["cached"] and r1 == r2
    assert data_equivalence(i1, i2, exact=True)
    assert _last_widths_episode(second)[1]["cached"]  # its own second ask
    own = make(finetune_steps=3, eval_seed=321, cache_size=0)  # keeps no history: never cached
    assert not _last_widths_episode(own)[1]["cached"] and not _last_widths_episode(own)[1]["cached"]
