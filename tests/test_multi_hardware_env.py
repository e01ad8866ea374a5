"""quant_envs/MixedPrecisionMultiHardware-v0: per-episode accelerators, descriptor, budgets, replay.

The API checks (Gymnasium's and SB3's checkers, same-seed replay) run in tests/test_env_api.py on
the live digits-cnn task; here the table mode (digits-cnn's exhaustive table) is compared with
MixedPrecisionTable-v0 on the same accelerator, and the descriptor's values are recomputed from
hw_sim directly.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import hw_sim
import quant_envs  # noqa: F401  (registers the ids)
from quant_envs.mixed_precision.multi_hardware import (
    DESCRIPTOR_GROUPS,
    MixedPrecisionMultiHardwareEnv,
    descriptor_size,
)
from quant_envs.mixed_precision.tables.env import MixedPrecisionTableEnv
from quant_envs.mixed_precision.tables.registry import load_table

ID = "quant_envs/MixedPrecisionMultiHardware-v0"
NB = 7  # digits-cnn's table: 2..8 bits


def make(**kw) -> MixedPrecisionMultiHardwareEnv:
    return gym.make(ID, **{"table": "digits-cnn", **kw}).unwrapped


def rollout(env, seed, options=None, pick=-1):
    obs, info = env.reset(seed=seed, options=options)
    out = [obs]
    done = False
    while not done:
        a = int(np.flatnonzero(env.action_masks())[pick])
        obs, r, done, _, info = env.step(a)
        out.append(obs)
    return np.array(out), r, info


def test_observation_is_the_inner_env_s_plus_a_descriptor() -> None:
    env = make(hardware=["bismo-edge"])
    obs, info = env.reset(seed=0)
    assert env.observation_space.shape == (13 + descriptor_size(NB),) == (37,)
    assert info["hardware"] == "bismo-edge"
    # the same table, accelerator and absolute budget through MixedPrecisionTable-v0 directly
    ref = MixedPrecisionTableEnv(table="digits-cnn", hardware="bismo-edge", budget=env.problem.budget)
    r_obs, _ = ref.reset(seed=0)
    np.testing.assert_allclose(obs[:13], r_obs, rtol=1e-6)
    done = False
    while not done:
        np.testing.assert_array_equal(env.action_masks(), ref.action_masks())
        a = int(np.flatnonzero(ref.action_masks())[len(np.flatnonzero(ref.action_masks())) // 2])
        obs, r, done, _, info = env.step(a)
        r_obs, r_r, _, _, r_info = ref.step(a)
        np.testing.assert_allclose(obs[:13], r_obs, rtol=1e-6)
    assert r == r_r and info["regret"] == r_info["regret"] and info["policy"] == r_info["policy"]
    assert env.observation_space.contains(obs)


def test_budget_level_per_accelerator() -> None:
    """Default budget: cheapest + 0.3 (all-8-bit - cheapest) on each accelerator, from hw_sim directly."""
    shapes = [hw_sim.LayerShape(**s) for s in load_table("digits-cnn").meta["hw_layer_shapes"]]
    env = make(hardware=["bismo-edge", "int8-npu"], hardware_order="cycle")
    for name in ("bismo-edge", "int8-npu"):
        env.reset()
        assert env.accelerator.name == name
        lat = np.asarray(hw_sim.CostTable(shapes, name).latency)
        diag = lat[:, range(NB), range(NB)]
        cheapest, widest = diag.min(axis=1).sum(), diag[:, -1].sum()
        assert env.problem.budget == pytest.approx(cheapest + 0.3 * (widest - cheapest), rel=1e-12)


def test_budget_fraction_clipped_where_infeasible() -> None:
    env = make(hardware=["bismo-edge", "int8-npu"], hardware_order="cycle", budget_fraction=0.4)
    _, info = env.reset()
    # bismo-edge: cheapest digits-cnn policy 0.25 of all-8-bit latency, so 0.4 is feasible
    assert not info["budget_clipped"]
    assert env.problem.budget == pytest.approx(0.4 * env.problem.reference_cost["latency"])
    _, info = env.reset()  # int8-npu: cheapest 0.81 of all-8-bit
    assert info["budget_clipped"] and env.problem.budget == pytest.approx(env.problem.min_cost)
    _, _, info = rollout(env, None)
    assert info["budget_used"] <= 1 + 1e-9


def test_descriptor_values() -> None:
    env = make(hardware=["bismo-edge", "int8-npu"], hardware_order="cycle")
    shapes = [hw_sim.LayerShape(**s) for s in load_table("digits-cnn").meta["hw_layer_shapes"]]
    for kind in ("bit-serial", "fixed-width"):
        obs, _ = env.reset()
        d = obs[13:]
        acc = env.accelerator
        lat = np.asarray(hw_sim.CostTable(shapes, acc).latency)[0, range(NB), range(NB)]
        np.testing.assert_allclose(d[:NB], lat / lat[-1], rtol=1e-5)  # layer 0's cost per width / 8-bit
        assert d[NB - 1] == pytest.approx(1.0)
        assert list(d[2 * NB + 5: 2 * NB + 8]) == [k == kind for k in hw_sim.ARITHMETIC]
        # peak MAC/s: BISMO edge's 6.55e12 binary ops/s at 1x1 bit = 2 * 8*256*8 * 200e6 ops; a MAC is
        # 2 ops and w*a binary MACs at w, a bits, so at 8/8 bits the peak is 8*256*8*200e6/64 MAC/s
        if kind == "bit-serial":
            peak8 = 10 ** (9 + 6 * d[2 * NB - 1])
            assert peak8 == pytest.approx(8 * 256 * 8 * 200e6 / 64, rel=0.05)
    assert np.all((obs >= env.observation_space.low) & (obs <= env.observation_space.high))


def test_descriptor_groups_ablation() -> None:
    full = make(hardware=["bitfusion"])
    part = make(hardware=["bitfusion"], descriptor=("network",))
    a, _ = full.reset(seed=0)
    b, _ = part.reset(seed=0)
    np.testing.assert_array_equal(a[:13], b[:13])
    np.testing.assert_array_equal(b[13:13 + 2 * NB + 8], 0.0)
    np.testing.assert_array_equal(a[-2:], b[-2:])
    assert a[13:13 + 2 * NB + 8].any()
    with pytest.raises(ValueError, match="descriptor"):
        make(descriptor=("colour",))
    assert DESCRIPTOR_GROUPS[-1] == "network"


def test_family_draws_replay_with_the_seed() -> None:
    fam = [hw_sim.AcceleratorFamily(p, arithmetic=tuple(hw_sim.ARITHMETIC)) for p in ("bismo-edge", "bitfusion")]
    e1, e2 = make(hardware=fam), make(hardware=fam)
    names = []
    for seed in (0, 1, 2):
        o1, r1, i1 = rollout(e1, seed)
        o2, r2, i2 = rollout(e2, seed)
        np.testing.assert_array_equal(o1, o2)
        assert (r1, i1["hardware"], i1["policy"]) == (r2, i2["hardware"], i2["policy"])
        names.append(i1["hardware"])
        assert "~" in i1["hardware"]  # a fresh draw, not the profile itself
    assert len(set(names)) == 3


def test_pinned_hardware_and_cycle() -> None:
    env = make(hardware=["bismo-edge", "bitfusion", "gpu-int4-int8"], hardware_order="cycle")
    seen = [env.reset(seed=0 if k == 0 else None)[1]["hardware"] for k in range(4)]
    assert seen == ["bismo-edge", "bitfusion", "gpu-int4-int8", "bismo-edge"]
    _, info = env.reset(options={"hardware": "int8-npu"})  # not in the list: pinning allows any model
    assert info["hardware"] == "int8-npu"
    # on a table, accuracy is hardware-independent: the same policy scores the same everywhere
    scores = set()
    for hw in ("bismo-edge", "int8-npu"):
        _, _, info = rollout(env, None, options={"hardware": hw}, pick=0)
        scores.add((tuple(map(tuple, info["policy"])), info["accuracy"]))
    assert len(scores) == 1


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="hardware"):
        make(hardware=[])
    with pytest.raises(TypeError, match="hardware"):
        make(hardware=[3])
    with pytest.raises(ValueError, match="arithmetic kind"):
        make(hardware=[next(iter(hw_sim.MEASURED))])
    with pytest.raises(ValueError, match="hardware_order"):
        make(hardware_order="shuffle")
    with pytest.raises(ValueError, match="at most one"):
        make(budget_fraction=0.5, budget_level=0.5)
    with pytest.raises(TypeError, match="budget_level"):
        make(budget_level="0.5")
    with pytest.raises(ValueError, match="hw_sim layer shapes"):
        make(table="hawq-resnet18")


def test_live_mode_matches_mixed_precision_v0() -> None:
    """Live mode (no table): the episode is MixedPrecision-v0's on that accelerator and budget."""
    env = gym.make(ID, task="digits-cnn", finetune_steps=0, hardware=["bitfusion"]).unwrapped
    ref = gym.make("quant_envs/MixedPrecision-v0", task="digits-cnn", finetune_steps=0, hardware="bitfusion",
                   budget=env.problem.budget).unwrapped
    obs, info = env.reset(seed=0)
    r_obs, _ = ref.reset(seed=0)
    assert info["hardware"] == "bitfusion"
    done = False
    while not done:
        np.testing.assert_allclose(obs[:13], r_obs, rtol=1e-6)
        np.testing.assert_array_equal(env.action_masks(), ref.action_masks())
        a = int(np.flatnonzero(ref.action_masks())[0])
        obs, r, done, _, info = env.step(a)
        r_obs, r_r, _, _, r_info = ref.step(a)
    assert (r, info["accuracy"], info["policy"]) == (r_r, r_info["accuracy"], r_info["policy"])


def test_family_from_a_mapping() -> None:
    """train.py's --env-kwargs gives YAML mappings: {'family': profile, ...} builds the same family."""
    spec = {"family": "bitfusion", "arithmetic": ["bit-serial", "fixed-width"], "batch": [1, 4]}
    e1 = make(hardware=[spec])
    e2 = make(hardware=[hw_sim.AcceleratorFamily("bitfusion", arithmetic=("bit-serial", "fixed-width"),
                                                  batch=(1, 4))])
    for seed in (0, 1):
        o1, r1, i1 = rollout(e1, seed)
        o2, r2, i2 = rollout(e2, seed)
        assert i1["hardware"] == i2["hardware"] and i1["hardware"].startswith("bitfusion~")
        np.testing.assert_array_equal(o1, o2)
    with pytest.raises(ValueError, match="family"):
        make(hardware=[{"base": "bitfusion"}])
    with pytest.raises(ValueError, match="colour"):
        make(hardware=[{"family": "bitfusion", "colour": 1}])
