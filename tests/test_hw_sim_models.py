"""hw_sim accelerator models against hand-computed cases and published figures."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import hw_sim
from hw_sim import energy, networks

EDGE = hw_sim.get_accelerator("bismo-edge")
CLOUD = hw_sim.get_accelerator("bismo-cloud")
BF = hw_sim.get_accelerator("bitfusion")
NPU = hw_sim.get_accelerator("int8-npu")
GPU = hw_sim.get_accelerator("gpu-int4-int8")


# ---------------------------------------------------------------------------- reference networks
def test_reference_networks_match_published_sizes():
    # MobileNetV2 paper (Sandler et al. 2018, Table 4): 300 M multiply-adds, 3.4 M parameters
    # (our weight count excludes biases and batch-norm parameters, hence slightly below).
    mnv2 = networks.mobilenet_v2()
    assert len(mnv2) == 53
    assert sum(s.macs for s in mnv2) == pytest.approx(300e6, rel=0.01)
    assert sum(s.weight_count for s in mnv2) == pytest.approx(3.4e6, rel=0.03)
    assert sum(s.kind == "depthwise" for s in mnv2) == 17
    # ResNet-50: 4.1 G multiply-adds (torchvision's reported 4.09 GFLOPS counts MACs), 25.5 M params
    r50 = networks.resnet50()
    assert len(r50) == 54
    assert sum(s.macs for s in r50) == pytest.approx(4.09e9, rel=0.01)
    assert sum(s.weight_count for s in r50) == pytest.approx(25.5e6, rel=0.01)


# ---------------------------------------------------------------------------- BISMO
def test_bismo_peak_is_the_published_6_5_tops():
    # BISMO FPL'18 abstract: "a peak performance of 6.5 TOPS on the Xilinx PYNQ-Z1 board";
    # peak = 2 * Dm * Dk * Dn * f = 2 * 8 * 256 * 8 * 200 MHz = 6.55e12 binary ops/s.
    assert EDGE.peak_ops_per_s(1, 1) == pytest.approx(6.5e12, rel=0.01)
    assert EDGE.peak_ops_per_s(4, 2) == pytest.approx(EDGE.peak_ops_per_s(1, 1) / 8)


@pytest.mark.parametrize("w_bits,a_bits", [(1, 1), (2, 4), (8, 8)])
def test_bismo_aligned_gemm_runs_at_peak(w_bits, a_bits):
    # A GEMM whose dimensions are multiples of (Dm, Dk, Dn) fills every DPU every cycle, so with
    # zero instruction overhead its compute rate must equal the peak formula exactly.
    acc = dataclasses.replace(EDGE, exec_overhead_cycles=0)
    layer = hw_sim.LayerShape(m=1024, k=1024, n=1024)
    cost = acc.layer_cost(layer, w_bits, a_bits)
    assert 2 * layer.macs / cost.compute_s == pytest.approx(
        acc.peak_ops_per_s(w_bits, a_bits), rel=1e-12
    )


def test_bismo_cycles_hand_computed():
    # linear 300 -> 20 over 10 tokens: M=20, K=300, N=10 on Dm=Dn=8, Dk=256, at 3 x 5 bits:
    # ceil(20/8) * ceil(10/8) * ceil(300/256) * 3 * 5 = 3 * 2 * 2 * 15 = 180 cycles (FPL'18 formula)
    layer = hw_sim.LayerShape.linear(300, 20, tokens=10)
    pure = dataclasses.replace(EDGE, exec_overhead_cycles=0)
    assert pure.layer_cost(layer, 3, 5).compute_cycles == 180
    # with one issue cycle per execute instruction: 3 * 2 * 15 instructions * (2 + 1) cycles = 270
    issue = dataclasses.replace(EDGE, exec_overhead_cycles=1)
    assert issue.layer_cost(layer, 3, 5).compute_cycles == 270
    # the profiles use no issue overhead: HAQ's table is matched by the pure formula (see
    # tests/test_hw_sim_fidelity.py; one cycle per instruction overshoots its 8/8 -> 2/2 speed-up)
    assert EDGE.exec_overhead_cycles == CLOUD.exec_overhead_cycles == 0
    # batch multiplies N: ceil(40/8) = 5 column tiles -> 3 * 5 * 2 * 15 = 450
    assert pure.layer_cost(layer, 3, 5, batch=4).compute_cycles == 450


def test_bismo_depthwise_packs_groups_block_diagonally():
    # depthwise 3x3 over 32 channels of 8x8 (N=64): M_g = 1, K_g = 9 -> G = min(8 // 1, 256 // 9) = 8
    # groups per pass: 4 passes * ceil(8/8) * ceil(64/8) = 32 tiles, ceil(72/256) = 1 chunk.
    layer = hw_sim.LayerShape.conv2d(32, 32, 3, 8, padding=1, groups=32)
    pure = dataclasses.replace(EDGE, exec_overhead_cycles=0)
    assert pure.layer_cost(layer, 2, 2).compute_cycles == 32 * 4
    # one group at a time would take 32 * 8 tiles: packing must be the cheaper mapping
    assert pure.layer_cost(layer, 2, 2).compute_cycles < 32 * 8 * 4


def test_memory_term_hand_computed():
    # linear 1000 -> 1000, batch 1, w=4, a=8 on bismo-edge (128 KB usable per operand buffer):
    # W = 4e6 bits, I = 8000 bits, O = 8000 bits. Streaming inputs past resident weight chunks:
    # 4e6 + 8000 * ceil(4e6 / 1048576) = 4e6 + 32000; streaming weights: 8000 + 4e6 * 1 = 4.008e6.
    # traffic = 8000 + min(...) = 4.016e6 bits = 502000 bytes.
    layer = hw_sim.LayerShape.linear(1000, 1000)
    cost = EDGE.layer_cost(layer, 4, 8)
    assert cost.dram_bytes == 502000
    assert cost.memory_s == pytest.approx(502000 / 2.1e9)
    assert cost.bound == "memory"
    # latency = max(compute, memory) + fill/drain, exactly cycles / f
    expected = max(cost.compute_cycles, math.ceil(cost.memory_cycles)) + EDGE.fill_drain_cycles
    assert cost.cycles == expected
    assert cost.latency_s == pytest.approx(cost.cycles / EDGE.frequency_hz)
    # model size: 1e6 weights at 4 bits
    assert cost.size_bytes == 500000


def test_bismo_moves_the_lowered_matrix():
    # BISMO lowers convolutions with im2row on the host, so DRAM carries the lowered input:
    # conv 64 -> 64, 3x3, 16x16, pad 1 at 8 bits: weights 36864 B (fit the 128 KB buffer, read once),
    # lowered input 576 * 256 = 147456 B (9x the 16384 B feature map), output 16384 B.
    layer = hw_sim.LayerShape.conv2d(64, 64, 3, 16, padding=1)
    assert EDGE.layer_cost(layer, 8, 8).dram_bytes == 36864 + 147456 + 16384
    # its fetch ports move one Dk = 256-bit word per cycle: the lowered activations take
    # ceil(576/256) = 3 words per column x 256 columns x 8 bit-planes = 6144 cycles, the weights
    # 3 words x 64 rows x 8 planes = 1536; DRAM (2.1 GB/s at 200 MHz = 84 bits/cycle) is slower:
    # 200704 B * 8 / 84 = 19115 cycles
    assert EDGE.layer_cost(layer, 8, 8).memory_cycles == pytest.approx(200704 * 8 / 84)
    # the cloud's DRAM (25.6 GB/s = 1024 bits/cycle) is not the limit: the activation port is
    assert CLOUD.layer_cost(layer, 8, 8, batch=1).memory_cycles == 3 * 256 * 8


def test_bismo_fetches_weights_per_sample_in_convolutions():
    # HAQ's table: a convolution's weight fetch grows with the batch (the weights are fetched
    # again for each sample), a fully connected layer's does not (the batch is its N).
    conv = hw_sim.LayerShape.conv2d(320, 1280, 1, 7)
    fc = hw_sim.LayerShape.linear(1280, 1000)
    # weights 1280 rows x ceil(320/256) = 2 words x 8 planes, per sample: 16 * 20480 cycles
    assert CLOUD.layer_cost(conv, 8, 1, batch=16).memory_cycles == 16 * 1280 * 2 * 8
    # 1000 rows x 5 words x 8 planes, once for the batch (HAQ's table: 5000 cycles per weight bit)
    assert CLOUD.layer_cost(fc, 8, 1, batch=16).memory_cycles == 1000 * 5 * 8


def test_bitfusion_moves_32_bit_partial_sums():
    # Bit Fusion's simulator writes 32-bit partial sums to DRAM and reads them back (optimizer.py,
    # oprec = 32). 1x1 conv 64 -> 32 over 8x8 at 8/8, batch 1: the 8x8x32 tile of partial sums
    # fits the 8 KB output buffer (65536 bits) and all 64 input channels fit the buffers, so
    # partial sums 2 * 32 * 64 * 32 bits, inputs 64 * 64 * 8, weights 64 * 32 * 8.
    layer = hw_sim.LayerShape.conv2d(64, 32, 1, 8)
    cost = BF.layer_cost(layer, 8, 8)
    assert cost.dram_bytes == (2 * 32 * 64 * 32 + 64 * 64 * 8 + 64 * 32 * 8) / 8
    # memory-bound: 180224 bits / 192 bits per cycle > 64 positions * 4 lane groups = 256 cycles
    assert cost.compute_cycles == 256
    assert cost.bound == "memory"
    # the partial sums do not shrink with the widths, so 2/2 bits gain little here
    assert BF.layer_cost(layer, 2, 2).latency_s > 0.8 * cost.latency_s


# ---------------------------------------------------------------------------- Bit Fusion
@pytest.mark.parametrize(
    "w_bits,a_bits,pf",
    # ISCA'18 Fig. 2 / artifact page: 16 F-PEs at binary/ternary (2-bit), 4 at 2/8 mixed,
    # 1 at 8/8; in general pf = floor(8/max(a,2)) * floor(8/max(w,2)); 3 bits round up to 4.
    [
        (2, 2, 16),
        (2, 4, 8),
        (4, 4, 4),
        (2, 8, 4),
        (8, 2, 4),
        (4, 8, 2),
        (8, 8, 1),
        (3, 3, 4),
        (5, 5, 1),
        (1, 1, 16),
    ],
)
def test_bitfusion_fused_pe_count(w_bits, a_bits, pf):
    assert BF.fused_pes_per_unit(w_bits, a_bits) == pf
    assert BF.fused_pes(w_bits, a_bits) == 16 * 32 * pf


def test_bitfusion_default_configuration_is_the_eyeriss_setting():
    # bf_e_conf.ini: a=16, c=32, 500 MHz, if_width=192 bits, WBUF 64 KB, IBUF 32 KB (halved: double buffering)
    assert (BF.rows, BF.cols, BF.frequency_hz) == (16, 32, 500e6)
    assert BF.dram_bandwidth_bytes_per_s == 192 / 8 * 500e6
    assert (BF.weight_buffer_bytes, BF.input_buffer_bytes) == (32 * 1024, 16 * 1024)
    assert BF.native_bits == (2, 4, 8)


def test_bitfusion_cycles_hand_computed():
    # conv 64 -> 64, 3x3, 8x8 input, pad 1: N = 64 positions, K = 576, 2 column tiles of 32.
    layer = hw_sim.LayerShape.conv2d(64, 64, 3, 8, padding=1)
    # 8/8 (pf=1, 16 lanes): channel-wise 64*9*ceil(64/16)*2 = 4608 = im2col 64*ceil(576/16)*2
    assert BF.layer_cost(layer, 8, 8).compute_cycles == 4608
    # 4/4 (pf=4, 64 lanes): 64*9*1*2 = 1152 = 64*ceil(576/64)*2
    assert BF.layer_cost(layer, 4, 4).compute_cycles == 1152
    # 2/2 (pf=16, 256 lanes): the simulator maps every layer but the first channel-wise, which
    # wastes lanes here (64*9*1*2 = 1152, not im2col's 64*3*2 = 384)
    assert BF.layer_cost(layer, 2, 2).compute_cycles == 1152
    # 3 bits run as 4 bits
    assert BF.layer_cost(layer, 3, 3).compute_cycles == 1152
    assert BF.layer_cost(layer, 3, 3).w_bits_run == 4
    # first layer (3 input channels): im2col, 32*32 positions * ceil(27/16) = 2048 at 8/8
    first = hw_sim.LayerShape.conv2d(3, 32, 3, 32, padding=1)
    assert BF.layer_cost(first, 8, 8).compute_cycles == 1024 * 2


# ---------------------------------------------------------------------------- fixed width
def test_int8_npu_gains_only_memory_below_8_bits():
    layer = hw_sim.LayerShape.linear(1280, 1000)
    c8, c4, c2 = (NPU.layer_cost(layer, b, b) for b in (8, 4, 2))
    # compute: ceil(1000/32) * 1 position * ceil(1280/16) = 32 * 80 = 2560 cycles at every width
    assert c8.compute_cycles == c4.compute_cycles == c2.compute_cycles == 2560
    assert (c4.w_bits_run, c4.a_bits_run) == (8, 8)
    assert c2.dram_bytes < c4.dram_bytes < c8.dram_bytes
    assert c4.size_bytes == 1280 * 1000 / 2


def test_int8_npu_is_bitfusion_without_fusion():
    # Same array, clock, buffers and mappings: at 8/8 bits the two must agree layer by layer.
    shapes = networks.mobilenet_v2()
    t_bf = hw_sim.CostTable(shapes, BF, bits=[8])
    t_npu = hw_sim.CostTable(shapes, NPU, bits=[8])
    np.testing.assert_allclose(t_npu.latency, t_bf.latency, rtol=1e-12)


def test_gpu_peaks_match_the_t4_datasheet():
    # NVIDIA T4 datasheet: 130 INT8 TOPS, 260 INT4 TOPS (a MAC = 2 ops)
    assert 2 * GPU.peak_macs_per_s(8) == pytest.approx(130e12, rel=0.01)
    assert 2 * GPU.peak_macs_per_s(4) == pytest.approx(260e12, rel=0.01)
    assert 2 * GPU.peak_macs_per_s(3) == 2 * GPU.peak_macs_per_s(4)


def test_gpu_widths_round_up_and_pairs_share_a_width():
    layer = hw_sim.LayerShape.conv2d(256, 256, 3, 14, padding=1)
    assert GPU.layer_cost(layer, 3, 3).latency_s == GPU.layer_cost(layer, 4, 4).latency_s
    mixed = GPU.layer_cost(layer, 4, 8)
    assert (mixed.w_bits_run, mixed.a_bits_run) == (8, 8)
    assert mixed.compute_cycles == GPU.layer_cost(layer, 8, 8).compute_cycles


def test_gpu_is_calibrated_below_the_datasheet_peak():
    # HAWQ-V3's TVM kernels reach a few percent of the T4's tensor-core peak (fitted on their
    # ResNet-18 latencies; validated on ResNet-50 in tests/test_hw_sim_fidelity.py), and int4 is
    # less than 2x faster than int8.
    assert 0.01 < GPU.efficiency[8] < 0.1 and 0.01 < GPU.efficiency[4] < 0.1
    layer = hw_sim.LayerShape.conv2d(256, 256, 3, 14, padding=1)
    ratio = GPU.layer_cost(layer, 8, 8).latency_s / GPU.layer_cost(layer, 4, 4).latency_s
    assert 1.4 < ratio < 2.0
    assert GPU.default_batch == 8


# ---------------------------------------------------------------------------- memory-bound layers
def _mnv2_table(profile: str, batch: int) -> tuple[hw_sim.CostTable, list[int], list[int]]:
    shapes = networks.mobilenet_v2()
    table = hw_sim.CostTable(shapes, profile, batch=batch)
    dw = [i for i, s in enumerate(shapes) if s.kind == "depthwise"]
    pw = [i for i, s in enumerate(shapes) if s.kind == "conv" and s.kernel_area == 1]
    return table, dw, pw


def test_edge_depthwise_layers_are_memory_bound_and_scale_with_activation_bits():
    # HAQ (CVPR'19, Sec. 4.2 / Fig. 4): on the edge accelerator MobileNetV2's depthwise layers are
    # memory-bound and activations dominate their traffic, so their latency follows activation
    # bits only (HAQ's released MobileNetV2 latency table shows the same a-bit-only scaling).
    table, dw, pw = _mnv2_table("bismo-edge", batch=1)
    w2, w3 = table.bit_index(2), table.bit_index(3)
    a2, a8 = table.bit_index(2), table.bit_index(8)
    assert table.memory_bound[dw][:, [w2, w3], :].all()
    lat = table.latency[dw]
    # independent of weight bits (2 vs 3 bits: within 1%) ...
    np.testing.assert_allclose(lat[:, w3, :], lat[:, w2, :], rtol=0.01)
    # ... and nearly proportional to activation bits (8/2 bits -> at least 3.5x of the ideal 4x)
    assert (lat[:, w2, a8] / lat[:, w2, a2] > 3.5).all()
    # the expanding 1x1 convolutions (more outputs than inputs: high reuse of every input)
    # are compute-bound at 8-bit activations; only at narrow activations can their weight fetch
    # dominate (as the late 1x1 layers' weight-only costs in HAQ's table show)
    expand = [i for i in pw if table.layers[i].c_out > table.layers[i].c_in]
    assert len(expand) == 17  # 16 block expansions and the final 320 -> 1280
    assert not table.memory_bound[expand][:, :, a8].any()


def test_small_fully_connected_layer_is_memory_bound_at_every_width_on_the_edge():
    # The 1280 -> 1000 classifier at batch 1 reads each weight once: pure weight streaming.
    table, _, _ = _mnv2_table("bismo-edge", batch=1)
    assert table.memory_bound[-1].all()
    lat = table.latency[-1]
    # scales with weight bits, not activation bits
    np.testing.assert_allclose(lat[:, -1], lat[:, 0], rtol=0.01)
    assert lat[-1, 0] / lat[0, 0] == pytest.approx(4.0, rel=0.05)


def test_cloud_depthwise_layers_are_bound_by_activation_fetch():
    # HAQ's released cloud table (batch 16): every depthwise layer costs in proportion to the
    # activation width and not at all with the weight width (e.g. layer 1: 401408 cycles per
    # activation bit at every weight width), i.e. it is bound by fetching activations.
    # (The earlier model had these layers compute-bound, against the table.)
    table, dw, _ = _mnv2_table("bismo-cloud", batch=16)
    assert table.memory_bound[dw].all()
    # from 4-bit activations on, the weight width does not matter (within 1%), as in the table
    lat = table.latency[dw]
    a4 = table.bit_index(4)
    np.testing.assert_allclose(lat[:, 0, a4:], lat[:, -1, a4:], rtol=0.01)


def test_low_bits_make_more_layers_memory_bound_on_bitfusion():
    # Bit Fusion's compute shrinks 16x from 8/8 to 2/2 bits while traffic shrinks 4x, so lowering
    # the widths moves layers towards the memory bound.
    table, _, _ = _mnv2_table("bitfusion", batch=1)
    i2, i8 = table.bit_index(2), table.bit_index(8)
    assert table.memory_bound[:, i2, i2].sum() > table.memory_bound[:, i8, i8].sum()


# ---------------------------------------------------------------------------- energy
def test_energy_constants_follow_horowitz():
    # Horowitz ISSCC 2014 (45 nm): 8-bit mult 0.2 pJ, 32-bit mult 3.1 pJ (quadratic model: 3.2 pJ)
    assert energy.mult_energy_j(8, 8) == pytest.approx(0.2e-12)
    assert energy.mult_energy_j(32, 32) == pytest.approx(3.1e-12, rel=0.05)
    assert energy.add_energy_j(32) == pytest.approx(0.1e-12)
    assert energy.add_energy_j(8) == pytest.approx(0.03e-12)
    # 64-bit SRAM reads: 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ; DRAM 1.3-2.6 nJ per 64 bits
    assert energy.sram_energy_per_bit_j(32 * 1024) * 64 == pytest.approx(20e-12)
    assert energy.sram_energy_per_bit_j(1024 * 1024) * 64 == pytest.approx(100e-12)
    assert 1.3e-9 <= energy.DRAM_ENERGY_PER_BIT_J * 64 <= 2.6e-9


def test_mac_energy_is_quadratic_in_width():
    layer = hw_sim.LayerShape.conv2d(64, 64, 3, 16, padding=1)
    c8 = EDGE.layer_cost(layer, 8, 8)
    c4 = EDGE.layer_cost(layer, 4, 4)
    mult8 = layer.macs * 0.2e-12
    mult4 = layer.macs * 0.2e-12 / 4
    acc = layer.macs * 0.1e-12
    assert c8.mac_energy_j == pytest.approx(mult8 + acc)
    assert c4.mac_energy_j == pytest.approx(mult4 + acc)
    assert c8.energy_j == pytest.approx(c8.mac_energy_j + c8.sram_energy_j + c8.dram_energy_j)
    assert c8.dram_energy_j == pytest.approx(c8.dram_bytes * 8 * energy.DRAM_ENERGY_PER_BIT_J)
