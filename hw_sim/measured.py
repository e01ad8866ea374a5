"""Measured or published per-layer cost tables as accelerators.

A :class:`TableAccelerator` answers like a model (``CostTable``, the environments and the
cost-table command accept it) but looks its costs up in a table of one named network: per layer,
latency (and energy where published) by (weight bits, activation bits). Widths between the
table's columns run at the next measured width, as on the hardware; a network whose layers differ
from the table's raises ``ValueError`` naming the first mismatch.

Shipped tables (package data in ``hw_sim/data``; repository, file, commit and license in
``hw_sim/data/PROVENANCE.md``), see :data:`MEASURED` and :func:`get_table`:

======================================  ============================================================
name                                    what it holds
======================================  ============================================================
``haq-bismo-cloud-mobilenetv2``         HAQ's BISMO cloud latency table, MobileNetV2 (53 layers),
                                        batch 16, every (w, a) in 1..8 bits
``hawq-v3-t4-resnet18``                 HAWQ-V3's measured T4 latencies, ResNet-18 (19 layers: the
                                        first convolution and the classifier excluded), INT4 / INT8,
                                        batch 8
``hawq-v3-t4-resnet50``                 the same for ResNet-50 (52 layers)
======================================  ============================================================
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import ClassVar

import numpy as np

from hw_sim import networks
from hw_sim.accelerators import Accelerator, CostArrays, _Layers
from hw_sim.layer import LayerShape

#: the layer fields a table is matched on (a measured layer is one GEMM shape)
_MATCHED = ("m", "k", "n", "groups", "kernel_area")


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class TableAccelerator(Accelerator):
    """Per-layer costs looked up in a measured table of one network.

    Args:
        name: as for every accelerator.
        description: as for every accelerator.
        network: the network the table was measured on (e.g. ``"mobilenet_v2"``).
        layers: the table's layer shapes, in order; ``CostTable`` refuses any other network.
        bits: the measured widths, ascending; other widths in ``[min(bits), max(bits)]`` run at
            the next measured width (a table for 4 and 8 bits costs 6 bits as 8).
        latency_s: float array ``[layers, len(bits), len(bits)]`` (weight bits, activation bits).
        energy_j: same shape, or None when the source publishes no energy (energy is then NaN and
            an energy budget is refused).
        batch: the batch the table was measured at (the only batch it answers for).
        narrowest_bits: the narrowest width accepted (default ``min(bits)``); narrower widths than
            ``min(bits)`` run at ``min(bits)`` (e.g. 2-bit data in INT4 kernels).
        frequency_hz: the clock ``cycles`` are reported at (``latency_s * frequency_hz``).
        source: where the numbers come from (repository, file, commit, license).
    """

    reports_bound: ClassVar[bool] = False

    network: str
    layers: tuple[LayerShape, ...]
    bits: tuple[int, ...]
    latency_s: np.ndarray
    energy_j: np.ndarray | None = None
    batch: int
    source: str = ""
    narrowest_bits: int | None = None
    # a table has no memory system of its own: these fields of the models are unused here
    dram_bandwidth_bytes_per_s: float = float("nan")
    weight_buffer_bytes: float = float("nan")
    input_buffer_bytes: float = float("nan")
    _digest: str = field(default="", init=False)

    def __post_init__(self) -> None:
        bits = tuple(int(b) for b in self.bits)
        if not bits or list(bits) != sorted(set(bits)) or bits[0] < 1:
            raise ValueError(f"bits={self.bits!r} is not allowed; expected increasing widths >= 1")
        layers = tuple(self.layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, LayerShape):
                raise TypeError(f"layers[{i}]={layer!r} must be a hw_sim.LayerShape")
        shape = (len(layers), len(bits), len(bits))
        latency = np.array(self.latency_s, dtype=float)
        if latency.shape != shape:
            raise ValueError(
                f"latency_s has shape {latency.shape}, not allowed; expected {shape} "
                "(layers, weight bits, activation bits)"
            )
        if not (np.isfinite(latency).all() and (latency > 0).all()):
            raise ValueError("latency_s must be finite and positive everywhere")
        energy = None
        if self.energy_j is not None:
            energy = np.array(self.energy_j, dtype=float)
            if energy.shape != shape:
                raise ValueError(f"energy_j has shape {energy.shape}, not allowed; expected {shape}")
        latency.flags.writeable = False
        if energy is not None:
            energy.flags.writeable = False
        for name, value in (
            ("bits", bits),
            ("layers", layers),
            ("latency_s", latency),
            ("energy_j", energy),
            ("min_bits", bits[0] if self.narrowest_bits is None else int(self.narrowest_bits)),
            ("max_bits", bits[-1]),
            ("default_batch", int(self.batch)),
        ):
            object.__setattr__(self, name, value)
        digest = hashlib.sha1(latency.tobytes())
        if energy is not None:
            digest.update(energy.tobytes())
        object.__setattr__(self, "_digest", digest.hexdigest()[:12])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TableAccelerator) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        # stable and content-addressed: environments share a problem per repr of its arguments
        return (
            f"TableAccelerator(name={self.name!r}, network={self.network!r}, "
            f"layers={len(self.layers)}, bits={list(self.bits)}, batch={self.batch}, "
            f"table={self._digest})"
        )

    @property
    def native_bits(self) -> tuple[int, ...]:
        return self.bits

    # ------------------------------------------------------------------ matching
    def check_layers(self, layers: Sequence[LayerShape]) -> None:
        """Raise ValueError unless ``layers`` are the table's layers (same shapes, same order)."""
        layers = list(layers)
        if len(layers) != len(self.layers):
            raise ValueError(
                f"accelerator {self.name!r} is a table measured on {self.network} "
                f"({len(self.layers)} layers); the network given has {len(layers)} layers"
            )
        for i, (got, want) in enumerate(zip(layers, self.layers)):
            if any(getattr(got, f) != getattr(want, f) for f in _MATCHED):
                shown = ", ".join(f"{f}={getattr(want, f)}" for f in _MATCHED)
                given = ", ".join(f"{f}={getattr(got, f)}" for f in _MATCHED)
                raise ValueError(
                    f"accelerator {self.name!r} is a table measured on {self.network}: layer {i} "
                    f"is ({given}) but the table's layer {i} is ({shown})"
                )

    def _check_batch(self, batch: int | None) -> int:
        if batch is not None and batch != self.batch:
            raise ValueError(
                f"batch={batch!r} is not allowed for accelerator {self.name!r}; the table was "
                f"measured at batch {self.batch}"
            )
        return self.batch

    # ------------------------------------------------------------------ lookups
    def evaluate(
        self, layers: Sequence[LayerShape], w_bits, a_bits, batch: int | None = None
    ) -> CostArrays:
        self.check_layers(layers)
        batch = self._check_batch(batch)
        ly = _Layers.of(layers)
        w_bits, a_bits = np.asarray(w_bits), np.asarray(a_bits)
        wi = np.searchsorted(self.bits, w_bits, side="left")
        ai = np.searchsorted(self.bits, a_bits, side="left")
        rows = np.arange(len(self.layers)).reshape((-1,) + (1,) * (max(w_bits.ndim, 1) - 1))
        if w_bits.ndim == 0:
            rows = np.arange(len(self.layers))
        latency = self.latency_s[rows, wi, ai]
        energy = (
            np.full_like(latency, np.nan) if self.energy_j is None else self.energy_j[rows, wi, ai]
        )
        w_run = np.asarray(self.bits)[wi].astype(float)
        a_run = np.asarray(self.bits)[ai].astype(float)
        weights = ly.groups * ly.m * ly.k
        if latency.ndim != weights.ndim:
            weights = weights.reshape(latency.shape[:1] + (1,) * (latency.ndim - 1))
        size = weights * self.storage_bits(w_bits) / 8.0
        shape = np.broadcast_shapes(latency.shape, np.shape(size))
        cycles = latency * self.frequency_hz
        nan = np.full(shape, np.nan)
        macs = np.broadcast_to(weights * ly.n.reshape(weights.shape) * batch, shape)
        return CostArrays(
            w_run=np.broadcast_to(w_run, shape),
            a_run=np.broadcast_to(a_run, shape),
            cycles=np.broadcast_to(cycles, shape),
            compute_cycles=nan,
            memory_cycles=nan,
            latency_s=np.broadcast_to(latency, shape),
            compute_s=nan,
            memory_s=nan,
            energy_j=np.broadcast_to(energy, shape),
            mac_energy_j=nan,
            sram_energy_j=nan,
            dram_energy_j=nan,
            dram_bytes=nan,
            size_bytes=np.broadcast_to(size, shape),
            macs=macs,
            # a measurement does not say which resource bound the layer
            memory_bound=np.zeros(shape, dtype=bool),
        )

    def layer_cost(self, layer: LayerShape, w_bits: int, a_bits: int, batch: int | None = None):
        raise TypeError(
            f"accelerator {self.name!r} is a table measured on {self.network}: it costs whole "
            "networks (hw_sim.CostTable), not single layers"
        )

    def _compute_cycles(self, ly, w_run, a_run, batch):  # pragma: no cover - never modelled
        raise TypeError(f"accelerator {self.name!r} is a measured table, not a model")


# ---------------------------------------------------------------------------- shipped tables
def _data(name: str):
    return resources.files("hw_sim").joinpath("data", name)


def _provenance(key: str) -> str:
    return {
        "haq": (
            "mit-han-lab/haq, lib/simulator/lookup_tables/qmobilenetv2_imagenet100_batch16_"
            "latency_table.npy, commit 8228d126c800446fdc1cc263555d1e5aed7d9dfd, MIT license"
        ),
        "hawq": (
            "Zhen-Dong/HAWQ, ILP.ipynb (latency_int4, latency_int8), commit "
            "1616df69fdd99f100a8d8a6e78742e0a89292634, MIT license"
        ),
    }[key]


#: HAQ's table entries are BISMO cycles (they equal the BISMO formulas' cycle counts; HAQ gives no
#: unit); latency uses BISMO's 200 MHz clock, as the ``bismo-cloud`` profile does.
HAQ_TABLE_CLOCK_HZ = 200e6
#: HAWQ-V3's notebook gives no batch; its README's T4 speed table and tuning logs use batch 8.
HAWQ_BATCH = 8
#: the T4's boost clock, for reporting cycles
T4_CLOCK_HZ = 1.59e9


def haq_bismo_mobilenetv2() -> TableAccelerator:
    """HAQ's released BISMO latency table: MobileNetV2, batch 16, [layer, w-1, a-1] for 1..8 bits."""
    with _data("haq_qmobilenetv2_imagenet100_batch16_latency_table.npy").open("rb") as f:
        cycles = np.load(f).astype(float)
    return TableAccelerator(
        name="haq-bismo-cloud-mobilenetv2",
        description="HAQ's BISMO cloud latency table (MobileNetV2, 53 layers, batch 16, 1-8 bits)",
        network="mobilenet_v2",
        layers=tuple(networks.mobilenet_v2()),
        bits=tuple(range(1, 9)),
        latency_s=cycles / HAQ_TABLE_CLOCK_HZ,
        batch=16,
        frequency_hz=HAQ_TABLE_CLOCK_HZ,
        source=_provenance("haq"),
    )


def hawq_v3_t4_rows(network: str) -> list[dict[str, str]]:
    """The rows of HAWQ-V3's per-layer T4 latencies for ``"resnet18"`` or ``"resnet50"``."""
    with _data("hawq_v3_t4_latency.csv").open("r", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["network"] == network]
    if not rows:
        raise ValueError(f"network={network!r} is not allowed; expected 'resnet18' or 'resnet50'")
    return rows


def hawq_v3_t4(network: str) -> TableAccelerator:
    """HAWQ-V3's measured T4 INT4/INT8 latencies of ``network`` ("resnet18" or "resnet50").

    The first convolution and the classifier are not in HAWQ-V3's table, so the table covers
    ``networks.<network>()[1:-1]``. A mixed (4, 8) pair runs as INT8 x INT8 (the kernels take one
    width for both operands, as on the ``gpu-int4-int8`` model).
    """
    rows = hawq_v3_t4_rows(network)
    layers = {"resnet18": networks.resnet18, "resnet50": networks.resnet50}[network]()[1:-1]
    weights = [int(r["weights"]) for r in rows]
    if weights != [layer.weight_count for layer in layers]:
        raise ValueError(f"HAWQ-V3's {network} table does not match hw_sim.networks.{network}()")
    int4 = np.array([float(r["int4_latency_ms"]) for r in rows]) * 1e-3
    int8 = np.array([float(r["int8_latency_ms"]) for r in rows]) * 1e-3
    table = np.empty((len(rows), 2, 2))
    table[:, 0, 0] = int4
    table[:, 0, 1] = table[:, 1, 0] = table[:, 1, 1] = int8
    return TableAccelerator(
        name=f"hawq-v3-t4-{network}",
        description=f"HAWQ-V3's measured T4 INT4/INT8 latencies ({network}, {len(rows)} layers, batch 8)",
        network=f"{network}[1:-1]",
        layers=tuple(layers),
        bits=(4, 8),
        latency_s=table,
        batch=HAWQ_BATCH,
        frequency_hz=T4_CLOCK_HZ,
        packed_storage=False,
        narrowest_bits=1,
        source=_provenance("hawq"),
    )


#: name -> loader of every shipped table (loaded on first use and kept)
MEASURED: dict[str, Callable[[], TableAccelerator]] = {
    "haq-bismo-cloud-mobilenetv2": haq_bismo_mobilenetv2,
    "hawq-v3-t4-resnet18": lambda: hawq_v3_t4("resnet18"),
    "hawq-v3-t4-resnet50": lambda: hawq_v3_t4("resnet50"),
}


@cache
def get_table(name: str) -> TableAccelerator:
    """The shipped table registered under ``name`` in :data:`MEASURED`."""
    if name not in MEASURED:
        shown = ", ".join(repr(n) for n in MEASURED)
        raise ValueError(f"table={name!r} is not allowed; expected one of: {shown}")
    return MEASURED[name]()
