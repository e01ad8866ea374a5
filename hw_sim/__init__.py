"""hw_sim: accelerator cost models for mixed-precision quantization (numpy only, never torch).

A layer is a grouped GEMM (:class:`LayerShape`); an accelerator (:data:`PROFILES`,
:func:`get_accelerator`) turns a layer and its weight/activation bit widths into cycles, latency,
energy, DRAM traffic and a compute/memory-bound flag (:meth:`Accelerator.layer_cost`);
:class:`CostTable` precomputes a whole network over a grid of bit widths for fast policy queries and
exact action masking; :mod:`hw_sim.networks` has reference shapes (MobileNetV2, ResNet-18/50).
Published measurements are accelerators too (:class:`TableAccelerator`, :data:`MEASURED`: HAQ's
BISMO MobileNetV2 table, HAWQ-V3's T4 ResNet-18/50 latencies); :func:`register_profile` adds a
user's own accelerator under a name.

>>> import hw_sim
>>> layer = hw_sim.LayerShape.conv2d(c_in=64, c_out=64, kernel=3, in_hw=56, padding=1)
>>> cost = hw_sim.get_accelerator("bismo-edge").layer_cost(layer, w_bits=4, a_bits=4)
>>> cost.bound in ("compute", "memory")
True
"""

from __future__ import annotations

from hw_sim import measured, networks
from hw_sim.accelerators import (
    Accelerator,
    BitFusionAccelerator,
    BitParallelAccelerator,
    BitSerialAccelerator,
    CostArrays,
    LayerCost,
)
from hw_sim.cost_table import CostTable, PolicyCost
from hw_sim.family import ARITHMETIC, AcceleratorFamily, arithmetic_kind, sample_accelerators
from hw_sim.layer import LayerShape
from hw_sim.measured import MEASURED, TableAccelerator
from hw_sim.metrics import METRIC_INFO, METRICS, UNITS, Metric, metric_info
from hw_sim.profiles import PROFILES, get_accelerator, register_profile

__all__ = [
    "ARITHMETIC",
    "MEASURED",
    "METRICS",
    "METRIC_INFO",
    "PROFILES",
    "UNITS",
    "Accelerator",
    "AcceleratorFamily",
    "BitFusionAccelerator",
    "BitParallelAccelerator",
    "BitSerialAccelerator",
    "CostArrays",
    "CostTable",
    "LayerCost",
    "LayerShape",
    "Metric",
    "PolicyCost",
    "TableAccelerator",
    "arithmetic_kind",
    "get_accelerator",
    "measured",
    "metric_info",
    "networks",
    "register_profile",
    "sample_accelerators",
]
