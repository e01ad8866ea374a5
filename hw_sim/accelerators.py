"""Accelerator cost models: bit-serial (BISMO), bit-fused (Bit Fusion), bit-parallel fixed width.

Every model shares one memory and energy model (documented on :class:`Accelerator`) and differs in
how it turns a GEMM into compute cycles. All formulas are written once, vectorised with numpy:
``layer_cost`` evaluates them for one (layer, w_bits, a_bits) and :class:`hw_sim.CostTable`
evaluates the same code for whole [layers, w-bits, a-bits] grids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, SupportsIndex, overload

import numpy as np

from hw_sim import energy as _energy
from hw_sim.checks import check_int
from hw_sim.layer import LayerShape


@dataclass(frozen=True)
class LayerCost:
    """The cost of one layer at one (w_bits, a_bits) on one accelerator (SI units)."""

    w_bits: int
    a_bits: int
    #: widths the hardware actually computes at (e.g. 3 -> 4 on Bit Fusion, 4 -> 8 on an int8 NPU)
    w_bits_run: int
    a_bits_run: int
    #: total cycles at the accelerator clock: max(compute, memory) + fill/drain + fixed overhead
    cycles: float
    compute_cycles: float
    memory_cycles: float
    latency_s: float
    compute_s: float
    memory_s: float
    energy_j: float
    mac_energy_j: float
    sram_energy_j: float
    dram_energy_j: float
    dram_bytes: float
    #: weight storage of this layer in bytes (the model-size contribution)
    size_bytes: float
    macs: int
    #: "compute" or "memory": which of the two overlapped terms sets the latency
    bound: str


class CostArrays(NamedTuple):
    """Vectorised costs (:meth:`Accelerator.evaluate`): one broadcast float array per quantity,
    in the units of :class:`LayerCost` (``memory_bound`` is a bool array)."""

    #: widths the hardware computes at
    w_run: np.ndarray
    a_run: np.ndarray
    cycles: np.ndarray
    compute_cycles: np.ndarray
    memory_cycles: np.ndarray
    latency_s: np.ndarray
    compute_s: np.ndarray
    memory_s: np.ndarray
    energy_j: np.ndarray
    mac_energy_j: np.ndarray
    sram_energy_j: np.ndarray
    dram_energy_j: np.ndarray
    dram_bytes: np.ndarray
    size_bytes: np.ndarray
    macs: np.ndarray
    #: True where memory_cycles > compute_cycles (never set by a measured table)
    memory_bound: np.ndarray

    # ``evaluate`` used to return a dict: its ``r["latency_s"]`` lookups keep working
    @overload
    def __getitem__(self, key: SupportsIndex, /) -> np.ndarray: ...
    @overload
    def __getitem__(self, key: slice, /) -> tuple[np.ndarray, ...]: ...
    @overload
    def __getitem__(self, key: str, /) -> np.ndarray: ...
    def __getitem__(self, key: SupportsIndex | slice | str, /) -> Any:
        if isinstance(key, str):
            if key not in self._fields:
                raise KeyError(key)
            return getattr(self, key)
        return tuple.__getitem__(self, key)

    def layer_cost(self, index: int, w_bits: int, a_bits: int) -> LayerCost:
        """The entry at ``index`` (of arrays with one axis) as a :class:`LayerCost`."""
        return LayerCost(
            w_bits=w_bits,
            a_bits=a_bits,
            w_bits_run=int(self.w_run[index]),
            a_bits_run=int(self.a_run[index]),
            cycles=float(self.cycles[index]),
            compute_cycles=float(self.compute_cycles[index]),
            memory_cycles=float(self.memory_cycles[index]),
            latency_s=float(self.latency_s[index]),
            compute_s=float(self.compute_s[index]),
            memory_s=float(self.memory_s[index]),
            energy_j=float(self.energy_j[index]),
            mac_energy_j=float(self.mac_energy_j[index]),
            sram_energy_j=float(self.sram_energy_j[index]),
            dram_energy_j=float(self.dram_energy_j[index]),
            dram_bytes=float(self.dram_bytes[index]),
            size_bytes=float(self.size_bytes[index]),
            macs=int(self.macs[index]),
            bound="memory" if bool(self.memory_bound[index]) else "compute",
        )


class _Layers(NamedTuple):
    """Layer fields as float arrays broadcastable against bit grids."""

    m: np.ndarray
    k: np.ndarray
    n: np.ndarray
    groups: np.ndarray
    kernel_area: np.ndarray
    inputs: np.ndarray
    outputs: np.ndarray
    lowered_inputs: np.ndarray

    @classmethod
    def of(cls, layers: Sequence[LayerShape], ndim: int = 3) -> _Layers:
        shape = (len(layers),) + (1,) * (ndim - 1)

        def col(values: list[int]) -> np.ndarray:
            return np.asarray(values, dtype=float).reshape(shape)

        return cls(
            m=col([ly.m for ly in layers]),
            k=col([ly.k for ly in layers]),
            n=col([ly.n for ly in layers]),
            groups=col([ly.groups for ly in layers]),
            kernel_area=col([ly.kernel_area for ly in layers]),
            inputs=col([ly.input_count for ly in layers]),
            outputs=col([ly.output_count for ly in layers]),
            lowered_inputs=col([ly.lowered_input_elems for ly in layers]),
        )


def _ceil_div(a, b):
    return np.ceil(np.asarray(a, dtype=float) / b)


def packed_groups(m, k, groups, tile_m, tile_k):
    """Groups packed block-diagonally into one pass of a ``tile_m x tile_k`` array.

    Independent groups can share the array if their weights are laid out block-diagonally: a row
    holds one group's output channel and zeros outside that group's reduction lanes, so the
    zeros cancel the other groups' inputs. ``G = min(tile_m // m, tile_k // k)`` groups fit,
    clipped to [1, groups]. This is our mapping choice for grouped and depthwise convolutions;
    none of the accelerators' papers or runtimes describe one.
    """
    fit = np.minimum(np.floor(tile_m / m), np.floor(tile_k / k))
    return np.clip(fit, 1.0, groups)


@dataclass(frozen=True, kw_only=True)
class Accelerator:
    """Base class: shared memory, latency and energy model. Subclasses give compute cycles.

    Memory (DRAM traffic, bits), with ``b_w``/``b_a`` the stored widths (see ``packed_storage``)::

        W = weights * b_w
        I = (im2col-lowered input if lowered_inputs else input feature map) * batch * b_a
        O = output feature map * batch * b_a          (outputs requantized on chip to b_a)
        traffic = O + min(W + I * ceil(W / weight_buffer), I + W * ceil(I / input_buffer))

    i.e. one operand stays on chip and the other streams once per chunk of the resident one that
    fits its buffer (both read once when either fits). Outputs are written at the layer's own
    activation width: the next layer's width is unknown to a per-layer table, which must stay
    additive over layers.

    Latency::

        memory_cycles = traffic / 8 / dram_bandwidth * frequency
        cycles = max(compute_cycles, memory_cycles) + fill_drain_cycles + layer_overhead_s * frequency
        latency_s = cycles / frequency

    fetch, execute and write-back overlap (double-buffered), so the larger term sets the pace;
    the layer is ``"memory"``-bound when memory_cycles > compute_cycles.

    Energy (Horowitz ISSCC 2014, 45 nm; see :mod:`hw_sim.energy`)::

        E = batch * MACs * E_mac(run widths) + SRAM bits * e_sram + DRAM bits * e_dram
        SRAM bits = W_run * ceil(N / sram_reuse_n) + I_lowered_run * ceil(m / sram_reuse_m)
                    + O + traffic                     (operand reads + output and fill writes)

    where ``N = batch * n`` and ``sram_reuse_m/n`` say over how many output rows/columns the array
    reuses one operand read. Every profile reports energy on this one 45 nm scale so profiles
    compare; absolute figures for a 12 nm GPU would be lower.
    """

    #: False for a measured table, which does not say which resource bound a layer
    reports_bound: ClassVar[bool] = True

    name: str
    description: str = ""
    frequency_hz: float
    dram_bandwidth_bytes_per_s: float
    weight_buffer_bytes: float
    input_buffer_bytes: float
    min_bits: int = 1
    max_bits: int = 8
    packed_storage: bool = True
    lowered_inputs: bool = False
    #: batch a table is costed at unless told otherwise (HAQ's cloud setting is 16, edge 1)
    default_batch: int = 1
    layer_overhead_s: float = 0.0
    accumulator_bits: int = 32
    sram_energy_per_bit_j: float = field(
        default_factory=lambda: _energy.sram_energy_per_bit_j(8 * 1024)
    )
    dram_energy_per_bit_j: float = _energy.DRAM_ENERGY_PER_BIT_J
    sram_reuse_m: int = 1
    sram_reuse_n: int = 1

    # ------------------------------------------------------------------ per-model parts
    @property
    def native_bits(self) -> tuple[int, ...]:
        """Widths the datapath runs natively; other widths run at the next larger one."""
        return tuple(range(self.min_bits, self.max_bits + 1))

    @property
    def fill_drain_cycles(self) -> float:
        return 0.0

    def _compute_cycles(self, ly: _Layers, w_run, a_run, batch: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def _port_cycles(self, ly: _Layers, w_sto, a_sto, batch: int):
        """Cycles of any narrower per-operand fetch path than DRAM itself (none by default)."""
        return 0.0

    def _dataflow(self, ly: _Layers, w_run, a_run, w_sto, a_sto, batch: int):
        """(compute cycles, DRAM traffic in bits): the shared memory model of the class docstring."""
        w_traffic = ly.groups * ly.m * ly.k * w_sto
        in_elems = ly.lowered_inputs if self.lowered_inputs else ly.inputs
        i_traffic = in_elems * batch * a_sto
        o_traffic = ly.outputs * batch * a_sto
        w_buf = self.weight_buffer_bytes * 8.0
        i_buf = self.input_buffer_bytes * 8.0
        stream_inputs = w_traffic + i_traffic * np.maximum(1.0, np.ceil(w_traffic / w_buf))
        stream_weights = i_traffic + w_traffic * np.maximum(1.0, np.ceil(i_traffic / i_buf))
        traffic_bits = o_traffic + np.minimum(stream_inputs, stream_weights)
        return self._compute_cycles(ly, w_run, a_run, batch), traffic_bits

    # ------------------------------------------------------------------ bit widths
    def run_bits(self, bits):
        """The width the hardware computes at for requested ``bits`` (next supported width)."""
        native = np.asarray(self.native_bits)
        idx = np.searchsorted(native, np.asarray(bits), side="left")
        return native[idx]

    def _run_widths(self, w_bits, a_bits) -> tuple[np.ndarray, np.ndarray]:
        """(weight, activation) widths one MAC runs at; float arrays."""
        return self.run_bits(w_bits).astype(float), self.run_bits(a_bits).astype(float)

    def storage_bits(self, bits):
        """Width at which values are stored and moved: as requested if packed, else as run."""
        return np.asarray(bits) if self.packed_storage else self.run_bits(bits)

    def check_bits(self, name: str, bits: Any) -> int:
        """Validate one requested width for this accelerator; returns it as int."""
        try:
            return check_int(name, bits, min_value=self.min_bits, max_value=self.max_bits)
        except ValueError:
            native = ", ".join(str(b) for b in self.native_bits)
            raise ValueError(
                f"{name}={bits!r} is not allowed on accelerator {self.name!r}; expected an integer in "
                f"[{self.min_bits}, {self.max_bits}] (native widths: {native}; others run at the "
                "next larger native width)"
            ) from None

    # ------------------------------------------------------------------ the shared model
    def evaluate(
        self, layers: Sequence[LayerShape], w_bits, a_bits, batch: int | None = None
    ) -> CostArrays:
        """Vectorised costs: ``w_bits``/``a_bits`` broadcast against a leading layer axis.

        Bits must already be validated. Returns arrays of shape
        ``broadcast([L, 1, 1], w_bits, a_bits)`` (or as the caller arranged the axes).
        """
        ly = _Layers.of(layers)
        batch = self.default_batch if batch is None else batch
        return self._evaluate(ly, np.asarray(w_bits), np.asarray(a_bits), batch)

    def _evaluate(
        self, ly: _Layers, w_bits: np.ndarray, a_bits: np.ndarray, batch: int
    ) -> CostArrays:
        w_run, a_run = self._run_widths(w_bits, a_bits)
        w_sto = self.storage_bits(w_bits).astype(float)
        a_sto = self.storage_bits(a_bits).astype(float)
        n_total = ly.n * batch
        weights = ly.groups * ly.m * ly.k
        o_traffic = ly.outputs * batch * a_sto

        compute_cycles, traffic_bits = self._dataflow(ly, w_run, a_run, w_sto, a_sto, batch)
        compute_cycles = np.asarray(compute_cycles, dtype=float)
        dram_bytes = traffic_bits / 8.0
        memory_cycles = dram_bytes / self.dram_bandwidth_bytes_per_s * self.frequency_hz
        memory_cycles = np.maximum(memory_cycles, self._port_cycles(ly, w_sto, a_sto, batch))
        overhead_cycles = self.fill_drain_cycles + math.ceil(
            self.layer_overhead_s * self.frequency_hz
        )
        cycles = np.maximum(compute_cycles, np.ceil(memory_cycles)) + overhead_cycles
        latency_s = cycles / self.frequency_hz

        macs = weights * n_total
        mac_e = macs * _energy.mac_energy_j(w_run, a_run, self.accumulator_bits)
        sram_bits = (
            weights * w_run * _ceil_div(n_total, self.sram_reuse_n)
            + ly.lowered_inputs * batch * a_run * _ceil_div(ly.m, self.sram_reuse_m)
            + o_traffic
            + traffic_bits
        )
        sram_e = sram_bits * self.sram_energy_per_bit_j
        dram_e = traffic_bits * self.dram_energy_per_bit_j
        size_bytes = weights * w_sto / 8.0
        shape = np.broadcast_shapes(latency_s.shape, size_bytes.shape)
        return CostArrays(
            w_run=np.broadcast_to(w_run, shape),
            a_run=np.broadcast_to(a_run, shape),
            cycles=np.broadcast_to(cycles, shape),
            compute_cycles=np.broadcast_to(compute_cycles, shape),
            memory_cycles=np.broadcast_to(memory_cycles, shape),
            latency_s=np.broadcast_to(latency_s, shape),
            compute_s=np.broadcast_to(compute_cycles / self.frequency_hz, shape),
            memory_s=np.broadcast_to(memory_cycles / self.frequency_hz, shape),
            energy_j=np.broadcast_to(mac_e + sram_e + dram_e, shape),
            mac_energy_j=np.broadcast_to(mac_e, shape),
            sram_energy_j=np.broadcast_to(sram_e, shape),
            dram_energy_j=np.broadcast_to(dram_e, shape),
            dram_bytes=np.broadcast_to(dram_bytes, shape),
            size_bytes=np.broadcast_to(size_bytes, shape),
            macs=np.broadcast_to(macs, shape),
            memory_bound=np.broadcast_to(memory_cycles > compute_cycles, shape),
        )

    def layer_cost(
        self, layer: LayerShape, w_bits: int, a_bits: int, batch: int | None = None
    ) -> LayerCost:
        """Cost of ``layer`` with ``w_bits``-bit weights and ``a_bits``-bit activations
        (at ``batch``, default :attr:`default_batch`)."""
        if not isinstance(layer, LayerShape):
            raise TypeError(
                f"layer={layer!r} must be a hw_sim.LayerShape, got {type(layer).__name__}"
            )
        w_bits = self.check_bits("w_bits", w_bits)
        a_bits = self.check_bits("a_bits", a_bits)
        batch = check_int("batch", self.default_batch if batch is None else batch, min_value=1)
        r = self._evaluate(
            _Layers.of([layer], ndim=1), np.asarray([w_bits]), np.asarray([a_bits]), batch
        )
        return r.layer_cost(0, w_bits, a_bits)


@dataclass(frozen=True, kw_only=True)
class BitSerialAccelerator(Accelerator):
    """Bit-serial matrix-multiply overlay: BISMO (Umuroglu, Rasnayake, Själander, FPL 2018;
    Umuroglu et al., ACM TRETS 2019; code: github.com/EECS-NTNU/bismo), as costed by HAQ
    (Wang et al., CVPR 2019) and calibrated to HAQ's released latency table.

    A ``Dm x Dn`` array of dot-product units, each an AND + popcount over ``Dk`` bits, multiplies
    one bit-plane of the LHS (weights) by one bit-plane of the RHS (activations) per pass and
    shift-accumulates: a ``b_w x b_a`` product costs ``b_w * b_a`` binary passes, so cost scales
    with the product of the widths, at any width from 1 bit up.

    Execute stage (one instruction per output tile and bit-plane pair)::

        G     = packed groups per pass (see packed_groups; 1 for ordinary convolutions)
        P     = ceil(groups / G)                        passes
        C     = ceil(G*K / Dk)                          Dk-bit chunks of one reduction
        tiles = P * ceil(G*M / Dm) * ceil(batch*N / Dn)
        execute = tiles * b_w * b_a * (C + exec_overhead_cycles)

    which for ``groups = 1`` and zero overhead is the FPL'18 formula
    ``ceil(M/Dm) * ceil(N/Dn) * ceil(K/Dk) * b_w * b_a``. Peak throughput is
    ``2 * Dm * Dk * Dn * f / (b_w * b_a)`` ops/s (:meth:`peak_ops_per_s`).

    Fetch stages: each operand matrix is read into its buffer one ``Dk``-bit word (one chunk of
    one row or column of one bit-plane) per cycle on its own port, and the shared DRAM caps the
    sum (``dram_bandwidth_bytes_per_s``)::

        activations: P * C * batch*N * b_a       (im2row-lowered on the host, as BISMO's runtime
                                                  ``bismo_inference_conv.cpp`` does)
        weights:     P * R * G*M * C * b_w       (R = batch for a convolution: weights are fetched
                                                  again for every sample; R = 1 for a layer with
                                                  one output position, where the batch is the N)
        memory_cycles = max(activations, weights, DRAM bits / DRAM bits per cycle)

    Fetch, execute and result stages overlap, so ``cycles = max(execute, memory_cycles)``. HAQ's
    table has no per-layer constant (its classifier costs exactly 5000 cycles per weight bit, its
    third layer exactly 200704 per activation bit), so the pipeline fill/drain is left out by
    default; ``pipeline_fill=True`` adds our estimate of it: fetching the first LHS and RHS chunks
    (``(Dm + Dn) * Dk`` bits over the DRAM port), the dot-product pipeline (``ceil(log2 Dk) + 3``
    cycles: popcount tree, shift, accumulate) and writing the last ``Dm x Dn`` tile of 32-bit
    accumulators.
    Values are stored as bit-planes, so storage is exactly ``b`` bits; outputs are requantized on
    chip to ``b_a`` (HAQ's mixed-precision setting).

    Calibration (``hw_sim/data``, ``tests/test_hw_sim_fidelity.py``): HAQ's table for
    MobileNetV2 on the cloud configuration at batch 16 (``qmobilenetv2_imagenet100_batch16_latency_
    table.npy``, the only public BISMO-derived per-layer costs) fixed three structural choices:
    one ``Dk``-bit word per cycle per operand port (the table's activation-only cost of depthwise
    and early layers), weights re-fetched per sample in convolutions (its weight-only cost of the
    late 1x1 layers, 16x that of a single fetch at batch 16) and ``exec_overhead_cycles = 0``
    (1 issue cycle per instruction overshoots its 8/8 -> 2/2 speed-up by 28%), and no pipeline
    fill/drain (above). No numeric
    parameter is fitted: the array sizes are HAQ's and BISMO's. The first six and last two layers
    were inspected to choose the structure; the other 45 layers validate it.
    Grouped layers are packed block-diagonally (our choice; the table's depthwise costs agree).
    """

    dm: int
    dk: int
    dn: int
    exec_overhead_cycles: int = 0
    pipeline_fill: bool = False
    min_bits: int = 1
    max_bits: int = 16
    lowered_inputs: bool = True

    def peak_ops_per_s(self, w_bits: int = 1, a_bits: int = 1) -> float:
        """Peak ops/s (a MAC = 2 ops) at the given widths: ``2 Dm Dk Dn f / (b_w b_a)``."""
        return 2.0 * self.dm * self.dk * self.dn * self.frequency_hz / (w_bits * a_bits)

    @property
    def fill_drain_cycles(self) -> float:
        if not self.pipeline_fill:
            return 0.0
        bits_per_cycle = self.dram_bandwidth_bytes_per_s * 8.0 / self.frequency_hz
        fetch_first = math.ceil((self.dm + self.dn) * self.dk / bits_per_cycle)
        pipeline = math.ceil(math.log2(self.dk)) + 3
        write_last = math.ceil(self.dm * self.dn * self.accumulator_bits / bits_per_cycle)
        return float(fetch_first + pipeline + write_last)

    def _shape(self, ly: _Layers, batch: int):
        g = packed_groups(ly.m, ly.k, ly.groups, self.dm, self.dk)
        passes = np.ceil(ly.groups / g)
        chunks = _ceil_div(g * ly.k, self.dk)
        refetch = np.where(ly.n > 1, float(batch), 1.0)
        return g, passes, chunks, refetch

    def _compute_cycles(self, ly: _Layers, w_run, a_run, batch: int):
        g, passes, chunks, _ = self._shape(ly, batch)
        tiles = passes * _ceil_div(g * ly.m, self.dm) * _ceil_div(ly.n * batch, self.dn)
        return tiles * w_run * a_run * (chunks + self.exec_overhead_cycles)

    def _dataflow(self, ly: _Layers, w_run, a_run, w_sto, a_sto, batch: int):
        _, _, _, refetch = self._shape(ly, batch)
        traffic = (
            ly.lowered_inputs * batch * a_sto
            + ly.groups * ly.m * ly.k * w_sto * refetch
            + ly.outputs * batch * a_sto
        )
        return self._compute_cycles(ly, w_run, a_run, batch), traffic

    def _port_cycles(self, ly: _Layers, w_sto, a_sto, batch: int):
        g, passes, chunks, refetch = self._shape(ly, batch)
        act = passes * chunks * ly.n * batch * a_sto
        wgt = passes * refetch * g * ly.m * chunks * w_sto
        return np.maximum(act, wgt)


@dataclass(frozen=True, kw_only=True)
class BitFusionAccelerator(Accelerator):
    """Bit-level fusible systolic array: Bit Fusion (Sharma et al., ISCA 2018;
    code: github.com/hsharma35/bitfusion, ``bitfusion/src/simulator`` and ``src/optimizer``).

    Each fusion unit has 16 2-bit BitBricks that fuse into ``pf`` fused PEs::

        pf = floor(8 / max(b_a, 2)) * floor(8 / max(b_w, 2))

    (widths round up to 2, 4 or 8: 16 F-PEs at 2/2 bits, 4 at 4/4 or 2/8, 1 at 8/8). The array
    has ``rows x cols`` fusion units; rows reduce over ``lanes = rows * pf`` input channels,
    columns hold output channels.

    Mapping and data movement follow the simulator (``optimizer.get_stats_fast``), which searches
    tilings of batch, output rows/columns, input channels (IC) and output channels (OC) and picks
    the fastest. Per layer (``B`` batch, ``O x O`` outputs, ``K x K`` kernel, stride ``S``):

    * mapping: channel-wise (kernel taps iterated in time, input channels on the lanes) for every
      layer except one reading the network input, which the host lowers with im2col; we take a
      layer with at most ``im2col_max_channels`` input channels (an image) as that layer.
    * tiles: a ``t x t`` block of outputs and ``oc_t`` output channels, with ``t = min(2^i, O)``
      and ``oc_t = min(cols * 2^j, OC)`` (the simulator's power-of-two tiles), such that the
      32-bit partial sums fit the output buffer: ``t^2 * oc_t * 32 <= OBUF``. The input-channel
      tile ``ic`` is the largest power of two whose weights (``K^2 * ic * oc_t * b_w``) fit the
      weight buffer and whose inputs (``(K + (t-1) S)^2 * ic * b_a``, or ``t^2 K^2 ic b_a`` lowered)
      fit the input buffer; ``n_ic = ceil(IC / ic)``, ``O_p = ceil(O / t) * t`` (edge tiles padded).
    * compute (``get_compute_cycles`` summed over the tiles)::

        channel-wise: B * ceil(OC/cols) * O_p^2 * K^2 * ceil(IC / lanes)
        im2col:       B * ceil(OC/cols) * O_p^2 * ceil(K^2 IC / lanes)

      (the simulator's power-of-two ``ic`` tiles can leave a lane group partly empty; its search
      mostly avoids that with smaller tiles and more partial-sum traffic, which ``n_ic`` charges;
      leaving the waste out keeps costs monotone in the widths).
    * DRAM traffic (bits): partial sums are 32-bit and are read back and written once per
      input-channel tile (``P = 2 * 32 * B * O_p^2 * OC_padded * n_ic``); inputs ``A`` are read
      once per spatial tile including the halo (lowered for im2col); weights ``W`` at ``b_w``.
      Three loop orders stand for the simulator's 120: output-channel tiles outermost (weights
      read once, inputs once per output-channel tile: ``P + A * ceil(OC/oc_t) + W``), spatial
      tiles outermost (inputs once, weights once per spatial tile unless all of them fit the
      weight buffer: ``P + A + W * (1 or B * ceil(O/t)^2)``), or input-channel tiles outermost
      with a tile small enough for the whole batch's inputs to stay in the input buffer
      (``P' + A + W``, ``P'`` with that tile's ``n_ic``; how the simulator runs fully connected
      layers, whose batch is their only spatial extent).
    * cycles: the candidate (t, oc_t, loop order) with the fewest ``max(compute, traffic /
      bits_per_cycle)`` (ties: the least traffic), plus ``rows + cols`` fill/drain cycles (our choice: the simulator adds the
      first tile's load instead). The simulator's energy tie-break among equal-cycle tilings is
      not modelled.

    Checked against the simulator's published sweep (``results/bitfusion-eyeriss-sim-sweep.csv``)
    and against the simulator run on ResNet-18 (``hw_sim/data``, ``tests/test_hw_sim_fidelity.py``).
    Grouped convolutions, which the simulator does not model, are packed block-diagonally (see
    :func:`packed_groups`, our choice) and run as ``ceil(groups / G)`` such layers.

    Default configuration (``PROFILES["bitfusion"]``): the paper's Eyeriss-comparison setting, as
    in the repo's ``bf_e_conf.ini``: 16 x 32 fusion units, 500 MHz, WBUF 64 KB, IBUF 32 KB,
    OBUF 16 KB, a 192-bit/cycle DRAM interface (12 GB/s); like the simulator we use half of each
    buffer (double buffering). Operands move at their requested widths (``packed_storage=True``,
    as in the simulator's traffic terms). Energy uses Horowitz's figures (see :class:`Accelerator`)
    on the same DRAM traffic, not the repo's synthesis and CACTI tables.
    """

    rows: int = 16
    cols: int = 32
    bitbrick_bits: int = 2
    max_fused_bits: int = 8
    min_bits: int = 1
    max_bits: int = 8
    output_buffer_bytes: float = 8 * 1024
    partial_sum_bits: int = 32
    im2col_max_channels: int = 4

    @property
    def native_bits(self) -> tuple[int, ...]:
        widths, b = [], self.bitbrick_bits
        while b <= self.max_fused_bits:
            widths.append(b)
            b *= 2
        return tuple(widths)

    def fused_pes_per_unit(self, w_bits: int, a_bits: int) -> int:
        """``pf``: fused PEs one fusion unit forms at these widths."""
        w = max(int(self.run_bits(w_bits)), self.bitbrick_bits)
        a = max(int(self.run_bits(a_bits)), self.bitbrick_bits)
        return (self.max_fused_bits // a) * (self.max_fused_bits // w)

    def fused_pes(self, w_bits: int, a_bits: int) -> int:
        """Fused PEs in the whole array: ``rows * cols * pf`` (MACs per cycle)."""
        return self.rows * self.cols * self.fused_pes_per_unit(w_bits, a_bits)

    @property
    def fill_drain_cycles(self) -> float:
        return float(self.rows + self.cols)

    def _dataflow(self, ly: _Layers, w_run, a_run, w_sto, a_sto, batch: int):
        pf = np.floor(self.max_fused_bits / np.maximum(a_run, self.bitbrick_bits)) * np.floor(
            self.max_fused_bits / np.maximum(w_run, self.bitbrick_bits)
        )
        lanes = self.rows * pf
        # the layer as the simulator sees it: K x K kernel, O x O outputs, stride S (a map whose
        # size is not a square, e.g. a linear layer over several tokens, is tiled as a row)
        kk = ly.kernel_area
        ksz = np.sqrt(kk)
        c_in_g = ly.k / kk
        c_in = ly.groups * c_in_g
        out_side = np.sqrt(ly.n)
        square = out_side == np.round(out_side)
        stride = np.maximum(1.0, np.round(np.sqrt(ly.inputs / c_in) / out_side))
        # grouped layers: G groups per pass, block-diagonally packed into the 8-bit lanes (the
        # same G at every width, so that narrower widths never cost more)
        g = packed_groups(ly.m, c_in_g, ly.groups, self.cols, float(self.rows))
        passes = np.ceil(ly.groups / g)
        ic_all = g * c_in_g
        oc_all = g * ly.m
        oc_pad = _ceil_div(oc_all, self.cols) * self.cols
        im2col = c_in <= self.im2col_max_channels
        w_buf = self.weight_buffer_bytes * 8.0
        i_buf = self.input_buffer_bytes * 8.0
        o_buf = self.output_buffer_bytes * 8.0
        psum = float(self.partial_sum_bits)
        weights_bits = ly.m * ly.k * g * w_sto  # stored weights of one pass (no packing zeros)
        # all weights resident? (padded to the array's rows; the simulator pads to the fused
        # lanes, which would let a wider activation, with fewer lanes, fit where a narrower
        # one does not)
        w_all_fit = _ceil_div(kk * ic_all, self.rows) * self.rows * oc_pad * w_sto <= w_buf

        # compute: every input channel on a lane once per tap (ceil(IC / lanes) lane groups); the
        # simulator's power-of-two input-channel tiles can cost a partly empty lane group more,
        # which its search mostly avoids with smaller tiles, at the price of more partial-sum
        # traffic (charged below through n_ic). Keeping compute tile-free keeps costs monotone.
        compute = (
            batch
            * (oc_pad / self.cols)
            * np.where(im2col, np.ceil(kk * ic_all / lanes), kk * np.ceil(ic_all / lanes))
        )
        best = None
        t_max = int(math.isqrt(int(o_buf // (self.cols * psum))))
        for i in range(max(t_max, 1).bit_length()):
            t = np.minimum(2.0**i, np.where(square, out_side, np.floor(out_side)))
            sp_tiles = np.where(square, np.ceil(out_side / t) ** 2, np.ceil(ly.n / (t * t)))
            out_pad = sp_tiles * t * t  # padded output positions
            halo = ksz + (t - 1) * stride
            a_tile = np.where(im2col, t * t * kk, halo * halo) * a_sto  # bits per input channel
            comp = compute * out_pad
            # output-channel tiles whose 32-bit partial sums fit the output buffer at this t
            for j in range(max(int(o_buf // ((2**i) ** 2 * self.cols * psum)), 1).bit_length()):
                oc_t = np.minimum(self.cols * 2.0**j, oc_pad)
                # the largest power-of-two input-channel tile whose weights and inputs fit
                ic_cap = np.minimum(w_buf / (oc_t * w_sto * kk), i_buf / a_tile)
                ic_t = np.minimum(ic_all, 2.0 ** np.floor(np.log2(np.maximum(ic_cap, 1.0))))
                n_ic = np.ceil(ic_all / ic_t)
                partial = 2.0 * psum * batch * out_pad * oc_pad * n_ic
                inputs = batch * sp_tiles * a_tile * ic_all
                oc_outer = partial + inputs * np.ceil(oc_pad / oc_t) + weights_bits
                sp_outer = partial + inputs + weights_bits * np.where(
                    w_all_fit, 1.0, batch * sp_tiles
                )
                # input-channel tiles outermost, each tile's inputs of the whole batch resident:
                # inputs and weights are read once, partial sums once per (smaller) tile
                ic_b = np.minimum(w_buf / (oc_t * w_sto * kk), i_buf / (batch * sp_tiles * a_tile))
                ic_b = np.minimum(ic_all, 2.0 ** np.floor(np.log2(np.maximum(ic_b, 1.0))))
                ic_outer = partial / n_ic * np.ceil(ic_all / ic_b) + inputs + weights_bits
                for traffic in (oc_outer, sp_outer, ic_outer):
                    cyc = np.maximum(comp, np.ceil(traffic / self._bits_per_cycle))
                    if best is None:
                        best = (cyc, comp, traffic)
                    else:
                        # fastest first; among equally fast tilings the least traffic (the
                        # simulator breaks ties by energy)
                        better = (cyc < best[0]) | ((cyc == best[0]) & (traffic < best[2]))
                        best = tuple(np.where(better, c, b) for c, b in zip((cyc, comp, traffic), best))
        assert best is not None  # the loops above run at least once
        _, best_compute, best_traffic = best
        return passes * best_compute, passes * best_traffic

    @property
    def _bits_per_cycle(self) -> float:
        return self.dram_bandwidth_bytes_per_s * 8.0 / self.frequency_hz


@dataclass(frozen=True, kw_only=True)
class BitParallelAccelerator(Accelerator):
    """Fixed-width bit-parallel datapath (an int8 NPU, or a GPU with int4/int8 tensor cores).

    Widths below a native width run at the next native width (both operands at the larger of the
    two: a 4-bit weight times an 8-bit activation runs as 8 x 8); widths above ``max_bits`` are
    rejected. Compute is tiled: the output is cut into ``tile_m x tile_n`` tiles, ``parallel_units``
    of them run at once (waves), each advancing ``tile_k`` reduction steps at
    ``macs_per_cycle[b]`` MACs per unit and cycle::

        G     = packed groups per tile (see packed_groups)
        tiles = ceil(groups / G) * ceil(G*M / tile_m) * ceil(batch*N / tile_n)
        compute_cycles = ceil(tiles / parallel_units) * ceil(G*K / tile_k)
                         * tile_m * tile_n * tile_k / (macs_per_cycle[b] * efficiency[b])

    With ``tile_n = 1``, ``tile_k = rows``, ``tile_m = cols`` and ``macs_per_cycle = rows * cols``
    this is a weight-stationary ``rows x cols`` systolic array: ``ceil(M/cols) * ceil(K/rows) * N``.
    With ``channelwise_mapping`` the array may instead put input channels on the reduction lanes
    and iterate the kernel taps in time (``kernel_area * ceil(G*C_in_g / tile_k)`` steps, as Bit
    Fusion's simulator does); the cheaper mapping is used. A GPU's implicit GEMM uses the
    flattened ``K`` only.
    A fixed ``layer_overhead_s`` (kernel launch on a GPU) is added to every layer.
    """

    native: tuple[int, ...] = (8,)
    tile_m: int
    tile_n: int
    tile_k: int
    parallel_units: int = 1
    macs_per_cycle: dict[int, float]
    #: sustained fraction of peak per native width (missing widths: 1.0)
    efficiency: dict[int, float] = field(default_factory=dict)
    fill_drain: float = 0.0
    channelwise_mapping: bool = False
    max_bits: int = 8

    def __post_init__(self) -> None:
        missing = [b for b in self.native if b not in self.macs_per_cycle]
        if missing:
            raise ValueError(
                f"macs_per_cycle={self.macs_per_cycle!r} is not allowed; expected a rate for every "
                f"native width {tuple(self.native)!r}"
            )
        if max(self.native) != self.max_bits:
            raise ValueError(
                f"max_bits={self.max_bits!r} is not allowed; expected the largest native width"
            )

    @property
    def native_bits(self) -> tuple[int, ...]:
        return tuple(sorted(self.native))

    @property
    def fill_drain_cycles(self) -> float:
        return float(self.fill_drain)

    def _run_widths(self, w_bits, a_bits) -> tuple[np.ndarray, np.ndarray]:
        # both operands of one MAC instruction share a width (e.g. int4 x int8 runs as int8 x int8)
        w_run, a_run = super()._run_widths(w_bits, a_bits)
        width = np.maximum(w_run, a_run)
        return width, width

    def peak_macs_per_s(self, bits: int) -> float:
        """Peak MAC/s at the native width ``bits`` runs at (before ``efficiency``)."""
        b = int(self.run_bits(bits))
        return self.macs_per_cycle[b] * self.parallel_units * self.frequency_hz

    def _compute_cycles(self, ly: _Layers, w_run, a_run, batch: int):
        width = np.asarray(w_run)  # == a_run, see _run_widths
        rate = np.zeros_like(width, dtype=float)
        for b, r in self.macs_per_cycle.items():
            rate = np.where(width == b, r * self.efficiency.get(b, 1.0), rate)
        per_step = (self.tile_m * self.tile_n * self.tile_k) / rate
        cycles = self._tiled_cycles(ly.m, ly.k, ly.groups, ly.n * batch, 1.0) * per_step
        if self.channelwise_mapping:
            # kernel taps iterated in time, input channels on the reduction lanes
            c_in_g = ly.k / ly.kernel_area
            cw = (
                self._tiled_cycles(ly.m, c_in_g, ly.groups, ly.n * batch, ly.kernel_area) * per_step
            )
            cycles = np.minimum(cycles, cw)
        return cycles

    def _tiled_cycles(self, m, k, groups, n_total, taps):
        g = packed_groups(m, k, groups, self.tile_m, self.tile_k)
        tiles = (
            np.ceil(groups / g) * _ceil_div(g * m, self.tile_m) * _ceil_div(n_total, self.tile_n)
        )
        waves = np.ceil(tiles / self.parallel_units)
        return waves * taps * _ceil_div(g * k, self.tile_k)
