"""hw_sim against published simulators and measurements, per layer and per bit pair.

Reference numbers are read from ``hw_sim/data`` (copied there with their source: repository, file,
commit and license in ``hw_sim/data/PROVENANCE.md``), never fetched at run time:

* Bit Fusion: the simulator's published sweep (github.com/hsharma35/bitfusion,
  ``results/bitfusion-eyeriss-sim-sweep.csv``) and the same simulator run on ResNet-18.
* BISMO: HAQ's released latency table (github.com/mit-han-lab/haq, MobileNetV2, batch 16).
* T4: HAWQ-V3's measured per-layer latencies (github.com/Zhen-Dong/HAWQ, ``ILP.ipynb``).
"""

from __future__ import annotations

import csv
import dataclasses
from importlib import resources

import numpy as np
import pytest

import hw_sim
from hw_sim import measured, networks

BF = hw_sim.get_accelerator("bitfusion")
CLOUD = hw_sim.get_accelerator("bismo-cloud")
GPU = hw_sim.get_accelerator("gpu-int4-int8")


def _rows(name: str) -> list[dict[str, str]]:
    with resources.files("hw_sim").joinpath("data", name).open("r", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _sim_layer(row: dict[str, str]) -> hw_sim.LayerShape:
    """A layer of the Bit Fusion simulator: K x K kernel, O x O outputs from an unpadded
    ((O - 1) S + K)-wide input; a MatMul is a K = O = 1 layer."""
    k, o, s = int(row["kernel"]), int(row["out_size"]), int(row["stride"])
    c_in, c_out = int(row["in_channels"]), int(row["out_channels"])
    if row["layer"].endswith("MatMul"):
        return hw_sim.LayerShape.linear(c_in, c_out)
    layer = hw_sim.LayerShape.conv2d(c_in, c_out, k, (o - 1) * s + k, stride=s)
    assert layer.n == o * o
    return layer


# ---------------------------------------------------------------------------- Bit Fusion
def test_bitfusion_matches_the_published_sweep_row_by_row():
    # 61 rows (AlexNet, SVHN, CIFAR-10, LeNet-5, VGG-7, ResNet-18 (WRPN), RNN, LSTM; conv and FC)
    # at each layer's own precisions. Tolerance: every row within [0.85, 1.10] of the simulator's
    # cycles (measured [0.89, 1.05]), the median within 3% (measured 1.000). The model keeps three
    # loop orders of the simulator's 120 and one batch tile per loop order; its lowest rows are
    # 2-bit layers whose input channels the simulator tiles unevenly (see BitFusionAccelerator).
    rows = _rows("bitfusion_eyeriss_sweep.csv")
    assert len(rows) == 61
    ratios = []
    for row in rows:
        assert int(row["batch"]) == 16 and int(row["bandwidth_bits_per_cycle"]) == 192
        cost = BF.layer_cost(_sim_layer(row), int(row["w_bits"]), int(row["a_bits"]), batch=16)
        ratios.append(cost.cycles / int(row["cycles"]))
    ratios = np.array(ratios)
    assert np.all((ratios >= 0.85) & (ratios <= 1.10)), ratios.round(2)
    assert np.median(ratios) == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_bitfusion_matches_the_simulator_on_resnet18(bits):
    # The simulator run on torchvision's ResNet-18 (21 layers, batch 16; bitfusion_sim_resnet18.csv).
    # Tolerance: every layer within [0.95, 1.05] (measured [0.983, 1.000]), the median within 2%.
    rows = [r for r in _rows("bitfusion_sim_resnet18.csv") if int(r["bits"]) == bits]
    shapes = networks.resnet18()
    assert len(rows) == len(shapes) == 21
    table = hw_sim.CostTable(shapes, BF, bits=[bits], batch=16)
    ratios = table.cycles[:, 0, 0] / np.array([int(r["cycles"]) for r in rows])
    assert np.all((ratios >= 0.95) & (ratios <= 1.05)), ratios.round(3)
    assert np.median(ratios) == pytest.approx(1.0, abs=0.02)


def test_bitfusion_resnet18_speedup_matches_the_simulator():
    # The simulator's 8/8 -> 2/2 whole-network speed-up on ResNet-18 is 3.7x (memory-bound at
    # 2 bits: 32-bit partial sums); the earlier model claimed 13.6x. Tolerance 5% (target 15%).
    rows = _rows("bitfusion_sim_resnet18.csv")
    ref = {b: sum(int(r["cycles"]) for r in rows if int(r["bits"]) == b) for b in (2, 4, 8)}
    table = hw_sim.CostTable(networks.resnet18(), BF, bits=[2, 4, 8], batch=16)
    model = {b: table.policy_cost([b] * 21, [b] * 21) for b in (2, 4, 8)}
    assert model[8] / model[2] == pytest.approx(ref[8] / ref[2], rel=0.05)
    assert model[8] / model[4] == pytest.approx(ref[8] / ref[4], rel=0.05)


# ---------------------------------------------------------------------------- BISMO vs HAQ
@pytest.fixture(scope="module")
def haq():
    """(HAQ's table in cycles [53, 8, 8], the model's cycles on the same grid)."""
    table = measured.haq_bismo_mobilenetv2()
    ref = table.latency_s * measured.HAQ_TABLE_CLOCK_HZ
    model = hw_sim.CostTable(networks.mobilenet_v2(), CLOUD, bits=range(1, 9), batch=16).cycles
    return ref, model


def test_bismo_whole_network_speedups_match_haq(haq):
    # HAQ's table: 8/8 -> 4/4 2.52x, 8/8 -> 2/2 5.61x, w8a2 / w2a8 = 0.39 (activations dearer).
    # Tolerance 5% on speed-ups, 10% on the asymmetry (targets: 15% and 25%).
    ref, model = haq
    r, m = ref.sum(0), model.sum(0)
    assert r[7, 7] / r[3, 3] == pytest.approx(2.52, abs=0.01)
    assert m[7, 7] / m[3, 3] == pytest.approx(r[7, 7] / r[3, 3], rel=0.05)
    assert m[7, 7] / m[1, 1] == pytest.approx(r[7, 7] / r[1, 1], rel=0.05)
    assert r[7, 1] / r[1, 7] == pytest.approx(0.39, abs=0.01)
    assert m[7, 1] / m[1, 7] == pytest.approx(r[7, 1] / r[1, 7], rel=0.10)


def test_bismo_per_layer_surface_matches_haq(haq):
    # Each layer's cost surface normalised to its 8/8 entry, compared entry by entry (64 bit pairs
    # x 53 layers). Tolerances: median error over all entries 5% (measured 2%); each layer's median
    # 25% (worst measured 18%: the late 7x7 layers, where the table sits between overlapped and
    # serialised fetch/execute and the model overlaps them). No numeric parameter was fitted; the
    # structure was chosen on layers 0-5 and 51-52, so layers 6-50 are held out: their median
    # per-layer error must stay within 6%.
    ref, model = haq
    err = np.abs((model / model[:, 7:8, 7:8]) / (ref / ref[:, 7:8, 7:8]) - 1)
    per_layer = np.median(err.reshape(53, -1), axis=1)
    assert np.median(err) <= 0.05
    assert per_layer.max() <= 0.25, per_layer.round(3)
    assert np.median(per_layer[6:51]) <= 0.06


def test_bismo_absolute_cycles_match_haq(haq):
    # Not normalised: the model's cycles against the table's, entry by entry. Median within 5%,
    # 90% of entries within [0.7, 1.05] (the model overlaps stages the table partly serialises,
    # so it errs low, never high by more than rounding).
    ref, model = haq
    ratio = model / ref
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)
    assert np.mean((ratio >= 0.7) & (ratio <= 1.05)) >= 0.9
    assert ratio.max() <= 1.05


def test_bismo_depthwise_cost_follows_activation_bits_as_in_haq(haq):
    # The table's depthwise layers cost in proportion to activation bits (a8 / a2 = 4 within 2%
    # at 2-bit weights, every one of the 17); the model must show the same, layer by layer, and
    # call them bound by the activation fetch (the earlier model had them compute-bound).
    ref, model = haq
    dw = [i for i, s in enumerate(networks.mobilenet_v2()) if s.kind == "depthwise"]
    for cyc in (ref, model):
        a_ratio = cyc[dw, 1, 7] / cyc[dw, 1, 1]  # w2: a8 / a2
        assert np.all(np.abs(a_ratio / 4 - 1) < 0.02)
    table = hw_sim.CostTable(networks.mobilenet_v2(), CLOUD, bits=[2, 8])
    assert table.memory_bound[dw].all()


# ---------------------------------------------------------------------------- T4 vs HAWQ-V3
@pytest.mark.parametrize(
    "network,fitted", [("resnet18", True), ("resnet50", False)], ids=["resnet18-fit", "resnet50-held-out"]
)
def test_t4_matches_hawq_v3_per_layer(network, fitted):
    # HAWQ-V3's per-layer T4 latencies (ms, batch 8). The profile's efficiencies and tiles were
    # fitted on ResNet-18 and are validated on ResNet-50. Tolerance: median per-layer error 10%
    # at INT8 and at INT4 (measured 5.6% / 5.6% fitted, 5.6% / 7.7% held out; target 20%), and at
    # least 70% of layers within 25% (measured 77% for ResNet-50 at INT4; the outliers are layers
    # the TVM kernels run far from their usual rate, e.g. ResNet-50's first 1x1 convolution at
    # 0.07 ms for INT4 and INT8 alike, which a GEMM model cannot reproduce).
    rows = measured.hawq_v3_t4_rows(network)
    shapes = {"resnet18": networks.resnet18, "resnet50": networks.resnet50}[network]()[1:-1]
    assert [int(r["weights"]) for r in rows] == [s.weight_count for s in shapes]
    table = hw_sim.CostTable(shapes, GPU, bits=[4, 8], batch=8)
    for col, idx in (("int8_latency_ms", 1), ("int4_latency_ms", 0)):
        ref = np.array([float(r[col]) for r in rows]) * 1e-3
        err = np.abs(table.latency[:, idx, idx] / ref - 1)
        assert np.median(err) <= 0.10, (col, np.median(err))
        assert np.mean(err <= 0.25) >= 0.7, (col, err.round(2))


# ---------------------------------------------------------------------------- measured tables
def test_haq_table_is_an_accelerator():
    acc = hw_sim.get_accelerator("haq-bismo-cloud-mobilenetv2")
    assert isinstance(acc, hw_sim.TableAccelerator) and acc.default_batch == 16
    raw = np.load(resources.files("hw_sim").joinpath("data", acc_file()).open("rb"))
    table = hw_sim.CostTable(networks.mobilenet_v2(), acc)  # bits 2..8, batch 16 by default
    assert table.batch == 16
    np.testing.assert_allclose(table.cycles, raw[:, 1:, 1:], rtol=1e-12)
    # a policy's cost is the sum of its layers' entries
    w = np.array([8, 4] * 26 + [8])
    a = np.array([4, 8] * 26 + [8])
    expected = raw[np.arange(53), w - 1, a - 1].sum() / measured.HAQ_TABLE_CLOCK_HZ
    assert table.policy_cost(w, a) == pytest.approx(expected, rel=1e-12)
    # size is computed from the shapes; energy is not published and refused as a budget metric
    assert table.size[0, -1, 0] == 864  # 3x3x3x32 weights at 8 bits
    with pytest.raises(ValueError, match="publishes no"):
        table.min_completion_cost("energy")


def acc_file() -> str:
    return "haq_qmobilenetv2_imagenet100_batch16_latency_table.npy"


def test_tables_refuse_other_networks_and_batches():
    acc = hw_sim.get_accelerator("haq-bismo-cloud-mobilenetv2")
    with pytest.raises(ValueError, match="53 layers.*54 layers"):
        hw_sim.CostTable(networks.resnet50(), acc)
    with pytest.raises(ValueError, match="layer 52"):
        hw_sim.CostTable(networks.mobilenet_v2(num_classes=100), acc)
    with pytest.raises(ValueError, match="measured at batch 16"):
        hw_sim.CostTable(networks.mobilenet_v2(), acc, batch=1)
    with pytest.raises(TypeError, match="whole"):
        acc.layer_cost(networks.mobilenet_v2()[0], 8, 8)


def test_hawq_tables_round_widths_up_to_a_measured_kernel():
    acc = hw_sim.get_accelerator("hawq-v3-t4-resnet18")
    rows = measured.hawq_v3_t4_rows("resnet18")
    table = hw_sim.CostTable(networks.resnet18()[1:-1], acc, bits=[2, 3, 4, 6, 8])
    int4 = np.array([float(r["int4_latency_ms"]) for r in rows]) * 1e-3
    int8 = np.array([float(r["int8_latency_ms"]) for r in rows]) * 1e-3
    i = {b: table.bit_index(b) for b in (2, 3, 4, 6, 8)}
    for b in (2, 3, 4):
        np.testing.assert_array_equal(table.latency[:, i[b], i[b]], int4)
    np.testing.assert_array_equal(table.latency[:, i[6], i[6]], int8)
    # a mixed pair runs both operands at INT8, as the kernels take one width
    np.testing.assert_array_equal(table.latency[:, i[4], i[8]], int8)
    with pytest.raises(ValueError, match="batch 8"):
        hw_sim.CostTable(networks.resnet18()[1:-1], acc, batch=16)


def test_table_accelerator_checks_its_arguments():
    shapes = tuple(networks.resnet18()[1:3])
    ok = dict(
        name="mine", network="two-layers", layers=shapes, bits=(4, 8), batch=1, frequency_hz=1e9
    )
    acc = hw_sim.TableAccelerator(latency_s=np.ones((2, 2, 2)), **ok)
    assert hw_sim.CostTable(list(shapes), acc, bits=[4, 8]).policy_cost([4, 8], [4, 8]) == 2.0
    with pytest.raises(ValueError, match="shape"):
        hw_sim.TableAccelerator(latency_s=np.ones((2, 2)), **ok)
    with pytest.raises(ValueError, match="positive"):
        hw_sim.TableAccelerator(latency_s=-np.ones((2, 2, 2)), **ok)
    with pytest.raises(ValueError, match="increasing"):
        hw_sim.TableAccelerator(latency_s=np.ones((2, 2, 2)), **{**ok, "bits": (8, 4)})


# ---------------------------------------------------------------------------- extensibility
def test_register_profile():
    fast = dataclasses.replace(BF, name="bitfusion-test-1ghz", frequency_hz=1e9)
    try:
        assert hw_sim.register_profile(fast) is fast
        assert hw_sim.get_accelerator("bitfusion-test-1ghz") is fast
        with pytest.raises(ValueError, match="already registered"):
            hw_sim.register_profile(dataclasses.replace(fast, description="other"))
        other = dataclasses.replace(fast, description="other")
        assert hw_sim.register_profile(other, replace=True) is other
    finally:
        hw_sim.PROFILES.pop("bitfusion-test-1ghz", None)
    with pytest.raises(TypeError, match="hw_sim.Accelerator"):
        hw_sim.register_profile("bitfusion")
    with pytest.raises(ValueError, match="not allowed"):
        hw_sim.get_accelerator("no-such-profile")
