"""Named accelerator profiles, each parameter with its source (or marked as our choice).

=================  ===========================================================================
profile            what it models
=================  ===========================================================================
``bismo-edge``     BISMO on a Zynq-7020 (PYNQ-Z1 class), HAQ's edge accelerator
``bismo-cloud``    BISMO on a Virtex UltraScale+ VU9P (AWS F1 class), HAQ's cloud accelerator
``bitfusion``      Bit Fusion, ISCA'18 Eyeriss-comparison configuration (45 nm, 500 MHz)
``int8-npu``       the same array as ``bitfusion`` without fusion: 512 8-bit MACs, 500 MHz
``gpu-int4-int8``  an NVIDIA T4 running HAWQ-V3's int8/int4 TVM kernels (HAWQ-V3's target)
=================  ===========================================================================

Checked against stored sources in this project's session: BISMO's 6.5 TOPS on the PYNQ-Z1 (FPL'18
abstract) and its 8 x 256 x 8 build parameters; the PYNQ-Z1's 16-bit DDR3 at 1050 MT/s, 630 KB of
block RAM and four HP AXI ports (Digilent reference manual); Bit Fusion's ``bf_e_conf.ini``,
simulator and optimizer (github.com/hsharma35/bitfusion). HAQ's Table 2 figures (edge 8 x 8 and
cloud 16 x 16 PE arrays, 4 x 64-bit and 4 x 256-bit AXI ports, batch 1 and 16) are quoted from the
HAQ paper as published; its text was not among the stored sources, so they were not re-checked
here. Horowitz's energies are the figures of his ISSCC 2014 keynote, as reproduced throughout the
accelerator literature.

Validated against published numbers shipped in ``hw_sim/data`` (``tests/test_hw_sim_fidelity.py``,
``benchmarks/bench_hw_fidelity.py``): ``bitfusion`` against its simulator (published sweep, and
ResNet-18 at 8/8, 4/4, 2/2), ``bismo-cloud`` against HAQ's MobileNetV2 latency table (batch 16),
``gpu-int4-int8`` against HAWQ-V3's per-layer T4 latencies (fitted on ResNet-18, validated on
ResNet-50). :func:`register_profile` adds your own accelerator under a name.
"""

from __future__ import annotations

import dataclasses

from hw_sim import energy as _energy
from hw_sim import measured  # tables load their data on first use
from hw_sim.accelerators import (
    Accelerator,
    BitFusionAccelerator,
    BitParallelAccelerator,
    BitSerialAccelerator,
)

KB = 1024
MB = 1024 * 1024

#: BISMO on a Zynq-7020 (PYNQ-Z1 class).
#:
#: * ``Dm = Dn = 8``, ``Dk = 256``, 200 MHz: BISMO FPL'18's PYNQ-Z1 instance, whose peak
#:   ``2 * 8 * 256 * 8 * 200 MHz = 6.55e12`` binary ops/s is the paper's "6.5 TOPS"; the 8 x 8
#:   array is also HAQ's (CVPR'19, Table 2) edge configuration.
#: * DRAM 2.1 GB/s: the PYNQ-Z1's 16-bit DDR3 at 1050 MT/s (Digilent reference manual). HAQ lists
#:   4 x 64-bit AXI ports (6.4 GB/s at 200 MHz); the DDR3 behind them is the tighter limit, and it
#:   is what makes MobileNetV2's depthwise layers memory-bound at low weight widths, as HAQ found.
#: * Buffers: 1024 entries x Dk bits per LHS/RHS memory, Dm (Dn) memories (the PYNQ-Z1 build's
#:   ``lhsEntriesPerMem``), i.e. 256 KB each, halved for double buffering (our choice).
#: * SRAM energy: BRAM36 banks (4.5 KB) -> Horowitz's 8 KB figure.
#: * Batch: HAQ's edge setting is batch 1 (pass ``batch=1`` to CostTable, the default).
BISMO_EDGE = BitSerialAccelerator(
    name="bismo-edge",
    description="BISMO bit-serial overlay, Zynq-7020 / PYNQ-Z1 class: 8x256x8 DPA @ 200 MHz, 2.1 GB/s DDR3",
    dm=8,
    dk=256,
    dn=8,
    frequency_hz=200e6,
    dram_bandwidth_bytes_per_s=2.1e9,
    weight_buffer_bytes=128 * KB,
    input_buffer_bytes=128 * KB,
    sram_energy_per_bit_j=_energy.sram_energy_per_bit_j(4.5 * KB),
    sram_reuse_m=8,
    sram_reuse_n=8,
)

#: BISMO on a VU9P (AWS F1 class).
#:
#: * ``Dm = Dn = 16``: HAQ's (CVPR'19, Table 2) cloud PE array; ``Dk = 256`` and 200 MHz: our
#:   choice, as in BISMO's published instances (HAQ gives neither).
#: * DRAM 25.6 GB/s: HAQ's 4 x 256-bit AXI ports at 200 MHz (the F1 card's four DDR4-2400
#:   channels, 76.8 GB/s, are not the limit).
#: * Buffers: 16 memories x 4096 entries x 256 bits = 2 MB per operand (the VU9P has 2160 BRAM36,
#:   9.5 MB), halved for double buffering: our choice.
#: * Batch: HAQ's cloud setting, batch 16, is the profile's ``default_batch``.
BISMO_CLOUD = BitSerialAccelerator(
    name="bismo-cloud",
    description="BISMO bit-serial overlay, VU9P / AWS F1 class: 16x256x16 DPA @ 200 MHz, 25.6 GB/s",
    dm=16,
    dk=256,
    dn=16,
    frequency_hz=200e6,
    dram_bandwidth_bytes_per_s=25.6e9,
    weight_buffer_bytes=1 * MB,
    input_buffer_bytes=1 * MB,
    sram_energy_per_bit_j=_energy.sram_energy_per_bit_j(4.5 * KB),
    sram_reuse_m=16,
    sram_reuse_n=16,
    default_batch=16,
)

#: Bit Fusion, ISCA'18 Eyeriss-comparison configuration (repo ``bf_e_conf.ini``): 16 x 32 fusion
#: units, 500 MHz, WBUF 64 KB, IBUF 32 KB, OBUF 16 KB (halved for double buffering, as the
#: simulator does), 192 bits/cycle to DRAM = 12 GB/s, 32-bit partial sums. SRAM energy: per-PE WBUF banks are far below
#: 8 KB -> Horowitz's 8 KB figure (an upper bound).
BITFUSION = BitFusionAccelerator(
    name="bitfusion",
    description="Bit Fusion (ISCA'18) Eyeriss-comparison setting: 16x32 fusion units @ 500 MHz, 12 GB/s",
    rows=16,
    cols=32,
    frequency_hz=500e6,
    dram_bandwidth_bytes_per_s=192 / 8 * 500e6,
    weight_buffer_bytes=32 * KB,
    input_buffer_bytes=16 * KB,
    output_buffer_bytes=8 * KB,
    sram_energy_per_bit_j=_energy.sram_energy_per_bit_j(8 * KB),
    sram_reuse_m=32,
    sram_reuse_n=1,
)

#: An int8 NPU: Bit Fusion's array, clock, buffers and DRAM with the fusion removed, i.e. a
#: weight-stationary 16 x 32 array of 8-bit MACs (512 MACs/cycle at 500 MHz). Our construction, so
#: that ``bitfusion`` vs ``int8-npu`` isolates what bit-level flexibility buys (same mappings: at
#: 8/8 bits both take the same cycles). Below 8 bits the
#: only gain is memory traffic: values are stored packed at their requested width and unpacked on
#: chip (``packed_storage=True``).
INT8_NPU = dataclasses.replace(  # every other parameter is BITFUSION's, so the two stay comparable
    BITFUSION,
    name="int8-npu",
    description="int8 NPU: 16x32 array of 8-bit MACs @ 500 MHz, 12 GB/s (Bit Fusion's array without fusion)",
    bitbrick_bits=8,
)

#: An NVIDIA T4 running HAWQ-V3's int4/int8 TVM kernels (HAWQ-V3's deployment target).
#:
#: * 40 SMs at 1.59 GHz boost; 1024 int8 and 2048 int4 tensor-core MACs per SM and cycle: NVIDIA's
#:   T4 datasheet peaks, 130 (int8) and 260 (int4) TOPS = 2 x 40 x {1024, 2048} x 1.59 GHz.
#: * 320 GB/s GDDR6 (datasheet); 4 MB L2 split between the operands (our choice).
#: * Tiles of 64 output channels x 16 output positions, 64-deep K steps, and the sustained
#:   fraction of tensor-core peak, 0.040 (int8) and 0.034 (int4), with no fixed per-layer
#:   overhead: FITTED to HAWQ-V3's measured per-layer T4 latencies of ResNet-18 (ILP.ipynb, 19
#:   layers, batch 8 as in their README's speed table) by a grid over tile sizes and overheads and
#:   the median ratio for the efficiencies; VALIDATED on their ResNet-50 latencies (52 layers), which
#:   were not used: median per-layer error 5.5% (int8) and 7.6% (int4); see
#:   benchmarks/bench_hw_fidelity.py. Their TVM kernels reach about 4% of the datasheet peak, and
#:   int4 runs 1.7x faster than int8 per layer, not 2x.
#: * Values are stored at the width they run at (``packed_storage=False``: 3-bit data lives in int4
#:   containers). Default batch 8 (HAWQ-V3's measurements).
GPU_INT4_INT8 = BitParallelAccelerator(
    name="gpu-int4-int8",
    description="NVIDIA T4 with HAWQ-V3's TVM int8/int4 kernels: 40 SMs @ 1.59 GHz, 130/260 TOPS peak, 320 GB/s",
    native=(4, 8),
    tile_m=64,
    tile_n=16,
    tile_k=64,
    parallel_units=40,
    macs_per_cycle={4: 2048, 8: 1024},
    efficiency={8: 0.040, 4: 0.0344},
    layer_overhead_s=0.0,
    frequency_hz=1.59e9,
    dram_bandwidth_bytes_per_s=320e9,
    weight_buffer_bytes=2 * MB,
    input_buffer_bytes=2 * MB,
    packed_storage=False,
    sram_energy_per_bit_j=_energy.sram_energy_per_bit_j(32 * KB),
    sram_reuse_m=64,
    sram_reuse_n=16,
    default_batch=8,
)

#: Every named profile: name -> accelerator.
PROFILES: dict[str, Accelerator] = {
    acc.name: acc for acc in (BISMO_EDGE, BISMO_CLOUD, BITFUSION, INT8_NPU, GPU_INT4_INT8)
}


def register_profile(accelerator: Accelerator, *, replace: bool = False) -> Accelerator:
    """Add ``accelerator`` to :data:`PROFILES` under its ``name``, so that every API taking a
    profile name (``get_accelerator``, ``CostTable``, the environments, the cost-table command)
    accepts it. Re-registering a name needs ``replace=True``. Returns the accelerator.

    >>> import dataclasses, hw_sim
    >>> fast = dataclasses.replace(hw_sim.get_accelerator("bitfusion"), name="bitfusion-2x", frequency_hz=1e9)
    >>> hw_sim.register_profile(fast).name in hw_sim.PROFILES
    True
    >>> del hw_sim.PROFILES["bitfusion-2x"]
    """
    if not isinstance(accelerator, Accelerator):
        raise TypeError(
            f"accelerator={accelerator!r} must be a hw_sim.Accelerator, got {type(accelerator).__name__}"
        )
    if not isinstance(replace, bool):
        raise TypeError(f"replace={replace!r} must be a bool, got {type(replace).__name__}")
    name = accelerator.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"accelerator.name={name!r} is not allowed; expected a non-empty string")
    if name in PROFILES and not replace and PROFILES[name] is not accelerator:
        raise ValueError(
            f"profile name {name!r} is already registered; pass replace=True to replace it"
        )
    PROFILES[name] = accelerator
    return accelerator


def get_accelerator(name: str | Accelerator) -> Accelerator:
    """The accelerator registered under ``name`` in :data:`PROFILES` (or a shipped measured table
    in :data:`hw_sim.measured.MEASURED`); an ``Accelerator`` instance is returned as is."""
    if isinstance(name, Accelerator):
        return name
    if isinstance(name, str) and name in PROFILES:
        return PROFILES[name]

    if isinstance(name, str) and name in measured.MEASURED:
        return measured.get_table(name)
    shown = ", ".join(repr(n) for n in (*PROFILES, *measured.MEASURED))
    raise ValueError(
        f"profile={name!r} is not allowed; expected an hw_sim.Accelerator or one of: {shown}"
    )
