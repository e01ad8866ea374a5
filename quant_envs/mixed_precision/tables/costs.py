"""A table's costs from ``hw_sim``: every profile's per-layer latency, energy and size at one width
per layer (weights and activations alike)."""

from __future__ import annotations

from typing import Any

import numpy as np

import hw_sim
from hw_sim.metrics import METRICS


def hw_sim_costs(shapes: list[dict[str, Any]], bits: tuple[int, ...]
                 ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """[layers, bits] latency, energy and size (w == a) of every ``hw_sim`` profile for layers given
    as ``hw_sim.LayerShape`` fields; profiles refusing a width are skipped (name -> reason)."""
    layers = [hw_sim.LayerShape(**s) for s in shapes]
    costs, skipped = {}, {}
    for name in hw_sim.PROFILES:
        try:
            table = hw_sim.CostTable(layers, hw_sim.get_accelerator(name), bits=bits)
        except ValueError as e:
            skipped[name] = str(e)
            continue
        costs[name] = equal_width_costs(table)
    return costs, skipped


def equal_width_costs(table: hw_sim.CostTable) -> dict[str, np.ndarray]:
    """Metric -> [layers, bits] cost of an ``hw_sim.CostTable`` at equal weight and activation widths
    (the diagonal w == a, a table benchmark's one width per unit); every metric, NaN where unpublished."""
    idx = np.arange(table.n_bits)
    return {m: np.asarray(table.metric_array(m))[:, idx, idx].copy() for m in METRICS}

