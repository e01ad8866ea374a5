"""The cost metrics, written once: name -> the field that holds its cost, its SI unit, and the field
that holds its fraction of the all-8-bit cost.

Every layer above (``CostTable``, the mixed-precision problem and environments, the baselines, the
agents' records) reads these names from here instead of spelling them again.

>>> from hw_sim.metrics import METRIC_INFO
>>> METRIC_INFO["energy"].cost_field, METRIC_INFO["energy"].unit
('energy_j', 'J')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from hw_sim.checks import check_choice


@dataclass(frozen=True)
class Metric:
    """One cost metric: ``name`` ("latency"), ``cost_field`` ("latency_s": the field of
    ``hw_sim.PolicyCost`` and of the mixed-precision ``Evaluation``), ``unit`` ("s") and
    ``fraction_field`` ("latency_fraction": the cost over the all-8-bit cost)."""

    name: str
    cost_field: str
    unit: str
    fraction_field: str


#: Every metric, in the order of ``METRICS`` (and of ``PolicyCost``'s fields); read-only.
METRIC_INFO: Mapping[str, Metric] = MappingProxyType({
    m.name: m for m in (
        Metric("latency", "latency_s", "s", "latency_fraction"),
        Metric("energy", "energy_j", "J", "energy_fraction"),
        Metric("size", "size_bytes", "B", "size_fraction"),
    )
})

#: The metric names: ("latency", "energy", "size").
METRICS: tuple[str, ...] = tuple(METRIC_INFO)
#: Metric -> SI unit: {"latency": "s", "energy": "J", "size": "B"}.
UNITS: dict[str, str] = {m.name: m.unit for m in METRIC_INFO.values()}


def metric_info(metric: str, name: str = "metric") -> Metric:
    """The :class:`Metric` named ``metric``; ValueError naming the argument ``name`` and the allowed
    metrics otherwise."""
    return METRIC_INFO[check_choice(name, metric, METRICS)]
