"""The table type of tabular mixed-precision benchmarks: a policy's score read from a table.

A :class:`PolicyTable` holds everything ``quant_envs/MixedPrecisionTable-v0`` needs:

* the *decision units* (one step each; a unit is one layer, or several tied layers that must share
  a width, like HAWQ-V3's residual downsampling convolution and its block's first convolution),
  with the layer facts the observation needs (channels, stride, kernel, weights, input size);
* ``bits``: the widths a unit can take (weights and activations alike: one width per unit);
* ``costs[hardware][metric]``: ``[units, len(bits)]`` per-unit costs in SI units (seconds, joules,
  bytes) or named units (``"bops"``), additive over units;
* the score (higher is better), either *separable* (``score`` of shape ``[units, len(bits)]``, a
  policy scores the sum over units; HAWQ's ``-Tr(H) ||dW||^2``) or *exhaustive* (``score`` of shape
  ``[len(bits)] * units``, one entry per policy; a retrained network's validation accuracy),
  plus optional exhaustive ``columns`` (test accuracy, ...), or a *surrogate* (``model``, a
  :class:`~quant_envs.mixed_precision.tables.surrogate.SurrogateTable` fitted to live evaluations,
  where the grid is too large to retrain every policy; ``score`` is then empty);
* ``meta``: provenance (repository, file, commit, license or the generator's command and seeds),
  units, defaults;
* ``float_state``: for a generated table, the float network's weights every entry was retrained
  from (a state_dict as numpy arrays), so its live problem is the same network on every machine.

The on-disk format is in :mod:`~quant_envs.mixed_precision.tables.npz`, the registered names in
:mod:`~quant_envs.mixed_precision.tables.registry`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quant_envs.mixed_precision.tables.surrogate import SurrogateTable


def grid_sum(per_unit: np.ndarray) -> np.ndarray:
    """Flat row-major array over all width-index vectors of ``sum_i per_unit[i, k_i]`` (a separable
    score, or per-unit costs, over the whole grid)."""
    total = np.zeros(1)
    for row in per_unit:
        total = (total[:, None] + row[None, :]).reshape(-1)
    return total


#: Per-unit layer facts, in this column order (as :func:`features.static_features` reads them).
LAYER_COLUMNS = ("c_in", "c_out", "stride", "kernel", "num_weights", "in_h", "in_w")


@dataclass(frozen=True)
class TableLayer:
    """The layer facts of one decision unit (attributes as ``QuantLayer``'s, for the features)."""

    name: str
    kind: str
    c_in: int
    c_out: int
    stride: int
    kernel: int
    num_weights: int
    in_hw: tuple[int, int]


@dataclass(frozen=True)
class PolicyTable:
    """A benchmark table; see the module docstring for the meaning of every field."""

    name: str
    bits: tuple[int, ...]
    units: tuple[tuple[str, ...], ...]  # layer names per decision unit
    layers: tuple[TableLayer, ...]  # one per unit (the unit's first layer's shape, weights summed)
    weight_std: np.ndarray  # [units], feature 10 (see meta["weight_std"] for what it holds)
    costs: dict[str, dict[str, np.ndarray]]  # hardware -> metric -> [units, len(bits)]
    metric_units: dict[str, str]  # metric -> unit
    score: np.ndarray  # separable [units, len(bits)] or exhaustive [len(bits)] * units
    separable: bool
    score_name: str  # what the score is, e.g. "validation accuracy"
    score_scale: float  # regret and reward unit: score_scale * score (100: accuracy points)
    regret_unit: str
    score_offset: float  # the reward's zero (the float network's accuracy; 0 for HAWQ)
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # extra exhaustive columns
    default_hardware: str = ""
    default_budget: dict[str, Any] = field(default_factory=dict)  # metric + fraction or level
    default_reward_scale: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    float_state: dict[str, np.ndarray] = field(default_factory=dict)  # the retrained float network
    model: SurrogateTable | None = None  # a surrogate's scoring function (``score`` empty, no columns)

    def __post_init__(self) -> None:
        n, nb = len(self.units), len(self.bits)
        if len(self.layers) != n or np.shape(self.weight_std) != (n,):
            raise ValueError(f"table {self.name!r}: layers/weight_std must have one entry per unit ({n})")
        if self.model is not None:
            if self.separable or self.columns or self.model.num_units != n or self.model.bits != self.bits:
                raise ValueError(f"table {self.name!r}: a surrogate table is not separable, has no columns, and its "
                                 f"model scores {n} units over bits {self.bits}")
        want = (0,) if self.model is not None else (n, nb) if self.separable else (nb,) * n
        if self.score.shape != want:
            raise ValueError(f"table {self.name!r}: score has shape {self.score.shape}, expected {want}")
        for hw, metrics in self.costs.items():
            for m, arr in metrics.items():
                if arr.shape != (n, nb) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
                    raise ValueError(f"table {self.name!r}: costs[{hw!r}][{m!r}] must be finite, >= 0, "
                                     f"of shape {(n, nb)}, got {arr.shape}")
        for k, arr in self.columns.items():
            if arr.shape != (nb,) * n:
                raise ValueError(f"table {self.name!r}: column {k!r} has shape {arr.shape}, expected {(nb,) * n}")

    @property
    def num_units(self) -> int:
        return len(self.units)

    @functools.cached_property
    def digest(self) -> str:
        """16 hex digits of a SHA-256 over the widths, the score and the extra columns: the table's
        version, so that a result saved on it can be told from one on a regenerated table."""
        h = hashlib.sha256(json.dumps([list(self.bits), self.separable, sorted(self.columns)]).encode())
        if self.model is not None:
            h.update(self.model.digest.encode())
        for arr in (self.score, *(self.columns[k] for k in sorted(self.columns))):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]

    @property
    def hardware(self) -> tuple[str, ...]:
        return tuple(self.costs)

    def metrics(self, hardware: str) -> tuple[str, ...]:
        return tuple(self.costs[hardware])

    def flat_index(self, idx: np.ndarray) -> np.ndarray:
        """Row-major index into an exhaustive table of width-index vectors ``idx`` ([..., units])."""
        return np.ravel_multi_index(tuple(np.moveaxis(np.asarray(idx), -1, 0)), (len(self.bits),) * self.num_units)

    def scores(self, idx: np.ndarray) -> np.ndarray:
        """Scores of width-index vectors ``idx`` ([..., units])."""
        idx = np.asarray(idx)
        if self.model is not None:
            return self.model.scores(idx)
        if self.separable:
            return self.score[np.arange(self.num_units), idx].sum(axis=-1)
        return self.score.reshape(-1)[self.flat_index(idx)]

    def flat_scores(self) -> np.ndarray:
        """Every policy's score, row-major over the grid (float64; for enumeration)."""
        if self.model is not None:
            return self.model.flat_scores()
        if self.separable:
            return grid_sum(self.score)
        return self.score.reshape(-1).astype(float)

