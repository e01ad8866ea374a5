"""hw_sim.AcceleratorFamily: every draw a valid accelerator, seeded, spanning the documented ranges.

Expected ranges are the family's documented defaults (hw_sim/family.py's module docstring);
speed is measured in benchmarks/bench_transfer.py --hw-only, not here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import hw_sim
from hw_sim import networks

KINDS = tuple(hw_sim.ARITHMETIC)


@pytest.mark.parametrize("profile", sorted(hw_sim.PROFILES))
def test_every_draw_is_a_valid_accelerator(profile: str) -> None:
    fam = hw_sim.AcceleratorFamily(profile, arithmetic=KINDS, batch=(1, 4, 16))
    layers = networks.mobilenet_v2()
    for acc in fam.sample(seed=3, n=12):
        assert isinstance(acc, hw_sim.Accelerator)
        assert acc.name.startswith(profile + "~")
        table = hw_sim.CostTable(layers, acc)
        assert table.batch == acc.default_batch
        for metric in ("latency", "energy", "size"):
            a = np.asarray(getattr(table, metric))
            assert np.all(np.isfinite(a)) and np.all(a > 0), (acc.name, metric)
        # narrower never costs more latency than all-8-bit on any model (a property of every kind)
        lat = np.asarray(table.latency)
        assert np.all(lat[:, 0, 0] <= lat[:, -1, -1] * (1 + 1e-12)), acc.name


def test_same_seed_same_draws_other_seed_other_draws() -> None:
    fam = hw_sim.AcceleratorFamily("bitfusion", arithmetic=KINDS, batch=(1, 2, 8))
    a, b, c = fam.sample(seed=7, n=5), fam.sample(seed=7, n=5), fam.sample(seed=8, n=5)
    assert a == b  # frozen dataclasses: every parameter, the name included
    assert [x.name for x in a] != [x.name for x in c]
    # a Generator continues its stream: two draws of one are the first two of sample(n=2)
    rng = np.random.default_rng(7)
    assert [fam.draw(rng), fam.draw(rng)] == a[:2]


def test_draws_span_the_documented_ranges() -> None:
    base = hw_sim.get_accelerator("bismo-edge")
    fam = hw_sim.AcceleratorFamily(base, arithmetic=KINDS, batch=(1, 4, 16))
    draws = fam.sample(seed=0, n=400)
    f = np.array([d.frequency_hz / base.frequency_hz for d in draws])
    bw = np.array([d.dram_bandwidth_bytes_per_s / base.dram_bandwidth_bytes_per_s for d in draws])
    buf = np.array([d.weight_buffer_bytes / base.weight_buffer_bytes for d in draws])
    ibuf = np.array([d.input_buffer_bytes / base.input_buffer_bytes for d in draws])
    # documented defaults: clock 0.5..2, bandwidth and buffers 0.25..4, log-uniform
    for x, (lo, hi) in ((f, (0.5, 2.0)), (bw, (0.25, 4.0)), (buf, (0.25, 4.0))):
        assert x.min() >= lo * (1 - 1e-12) and x.max() <= hi * (1 + 1e-12)
        # 400 log-uniform draws: each tenth of the log range is hit (P(miss) < 1e-17)
        hist, _ = np.histogram(np.log(x), bins=10, range=(np.log(lo), np.log(hi)))
        assert np.all(hist > 0), hist
        # log-uniform: the median factor is the geometric mean of the range (within sampling error)
        assert abs(np.log(np.median(x)) - np.log(np.sqrt(lo * hi))) < 0.15 * np.log(hi / lo)
    np.testing.assert_allclose(buf, ibuf)  # one factor for every buffer
    assert {hw_sim.arithmetic_kind(d) for d in draws} == set(KINDS)
    assert {d.default_batch for d in draws} == {1, 4, 16}


def test_arithmetic_kinds_price_widths_as_documented() -> None:
    """Bit-serial compute scales with w x a, bit-fused steps at 2/4/8 bits, fixed-width is flat."""
    fam = hw_sim.AcceleratorFamily("bismo-edge", arithmetic=KINDS, frequency=(1, 1), bandwidth=(1, 1),
                                   buffer=(1, 1))
    big = hw_sim.LayerShape.linear(2048, 2048, tokens=2048)
    seen = {}
    for acc in fam.sample(seed=1, n=30):
        kind = hw_sim.arithmetic_kind(acc)
        c8, c4 = (acc.layer_cost(big, b, b).compute_cycles for b in (8, 4))
        seen[kind] = c8 / c4
    assert seen["bit-serial"] == pytest.approx(4.0, rel=0.05)  # BISMO: cycles ~ w_bits * a_bits
    assert seen["bit-fused"] == pytest.approx(4.0, rel=0.05)  # Bit Fusion: 4x the 4-bit MACs of 8-bit
    assert seen["fixed-width"] == pytest.approx(1.0)  # 8-bit MACs: no compute gain below 8 bits


def test_changed_arithmetic_keeps_the_base_memory_system() -> None:
    base = hw_sim.get_accelerator("bismo-cloud")
    fam = hw_sim.AcceleratorFamily(base, arithmetic=("bit-fused",), frequency=(1, 1), bandwidth=(2, 2),
                                   buffer=(0.5, 0.5))
    (acc,) = fam.sample(seed=0)
    assert isinstance(acc, hw_sim.BitFusionAccelerator)
    assert acc.frequency_hz == pytest.approx(base.frequency_hz)
    assert acc.dram_bandwidth_bytes_per_s == pytest.approx(2 * base.dram_bandwidth_bytes_per_s)
    assert acc.weight_buffer_bytes == pytest.approx(0.5 * base.weight_buffer_bytes)
    assert acc.default_batch == base.default_batch == 16


def test_sample_accelerators_round_robin() -> None:
    accs = hw_sim.sample_accelerators(["bismo-edge", "bitfusion"], n=5, seed=2)
    assert [a.name.split("~")[0] for a in accs] == ["bismo-edge", "bitfusion"] * 2 + ["bismo-edge"]
    assert accs == hw_sim.sample_accelerators(["bismo-edge", "bitfusion"], n=5, seed=2)


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"frequency": (2.0, 1.0)}, ValueError, "frequency"),
    ({"bandwidth": "wide"}, TypeError, "bandwidth"),
    ({"buffer": (0, 1)}, ValueError, "buffer"),
    ({"arithmetic": ("analog",)}, ValueError, "arithmetic"),
    ({"arithmetic": "bit-serial"}, ValueError, "arithmetic"),
    ({"batch": (0,)}, ValueError, "batch"),
    ({"batch": (True,)}, ValueError, "batch"),
])
def test_bad_family_arguments(kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        hw_sim.AcceleratorFamily("bismo-edge", **kwargs)


def test_bad_base_and_n() -> None:
    with pytest.raises(ValueError, match="profile"):
        hw_sim.AcceleratorFamily("no-such-profile")
    with pytest.raises(ValueError, match="arithmetic kind"):
        hw_sim.AcceleratorFamily(next(iter(hw_sim.MEASURED)))  # a measured table has no parameters to vary
    with pytest.raises(ValueError, match="n="):
        hw_sim.AcceleratorFamily("bismo-edge").sample(seed=0, n=0)
    with pytest.raises(TypeError, match="rng"):
        hw_sim.AcceleratorFamily("bismo-edge").draw(0)
    assert dataclasses.is_dataclass(hw_sim.AcceleratorFamily("bismo-edge"))
