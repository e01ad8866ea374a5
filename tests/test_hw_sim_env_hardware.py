"""The environments take any hw_sim accelerator: a profile name, a registered profile, an
``Accelerator`` instance or a measured table; the cost table then is that accelerator's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import hw_sim
from quant_envs.mixed_precision.env import MixedPrecisionEnv

# Bit Fusion at batch 1 on these small layers is bound by its 32-bit partial sums: the cheapest
# policy costs about 0.8 of all-8-bit, so the budget is 0.9 of it
TINY = {"task": "digits-cnn", "finetune_steps": 0, "budget_fraction": 0.9}


def test_env_accepts_an_accelerator_instance():
    # a user's own accelerator: Bit Fusion at twice the clock. Every latency must halve against
    # the named profile's, except the clock-independent DRAM time (memory-bound entries).
    mine = dataclasses.replace(hw_sim.get_accelerator("bitfusion"), name="bf-1ghz", frequency_hz=1e9)
    env = MixedPrecisionEnv(hardware=mine, **TINY)
    ref = MixedPrecisionEnv(hardware="bitfusion", **TINY)
    assert env.problem.accelerator is mine and env.problem.hardware == "bf-1ghz"
    shapes = [layer.shape for layer in env.problem.layers]
    expected = hw_sim.CostTable(shapes, mine, bits=env.problem.bits)
    np.testing.assert_array_equal(env.problem.costs.latency, expected.latency)
    compute_bound = ~ref.problem.costs.memory_bound
    np.testing.assert_allclose(
        env.problem.costs.cycles[compute_bound], ref.problem.costs.cycles[compute_bound]
    )
    assert (env.problem.costs.latency < ref.problem.costs.latency).all()
    env.reset(seed=0)
    _, _, _, _, _ = env.step(int(np.flatnonzero(env.action_masks())[-1]))


def test_env_accepts_a_registered_profile_and_a_table():
    mine = dataclasses.replace(hw_sim.get_accelerator("bismo-edge"), name="bismo-edge-test-fast",
                               dram_bandwidth_bytes_per_s=8.4e9)
    hw_sim.register_profile(mine)
    try:
        env = MixedPrecisionEnv(hardware="bismo-edge-test-fast", **TINY)
        assert env.problem.accelerator is mine
    finally:
        hw_sim.PROFILES.pop("bismo-edge-test-fast")
    # a table measured on the task's own layers (here: made up, 1 us per layer and bit pair
    # product) costs policies by lookup
    shapes = tuple(layer.shape for layer in env.problem.layers)
    bits = (2, 4, 8)
    lat = np.array([[[w * a * 1e-6 for a in bits] for w in bits]] * len(shapes))
    table = hw_sim.TableAccelerator(name="made-up", network="digits-cnn", layers=shapes, bits=bits,
                                    latency_s=lat, batch=1, frequency_hz=1e9)
    env = MixedPrecisionEnv(hardware=table, bits=bits, **TINY)
    assert env.problem.cost(env.problem.uniform_policy(8))["latency"] == pytest.approx(64e-6 * len(shapes))
    # a table of another network is refused with the layer that differs
    with pytest.raises(ValueError, match="table measured on mobilenet_v2"):
        MixedPrecisionEnv(hardware="haq-bismo-cloud-mobilenetv2", **TINY)
    with pytest.raises(TypeError, match="hardware="):
        MixedPrecisionEnv(hardware=3, **TINY)


def test_env_batch_defaults_to_the_accelerators():
    # HAQ's cloud setting is batch 16; the edge's is 1
    assert MixedPrecisionEnv(hardware="bismo-cloud", **TINY).problem.costs.batch == 16
    assert MixedPrecisionEnv(hardware="bismo-edge", **TINY).problem.costs.batch == 1
    assert MixedPrecisionEnv(hardware="bismo-cloud", batch=4, **TINY).problem.costs.batch == 4
