"""Tabular mixed-precision benchmarks: a policy's score read from a table instead of a retraining.

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
  plus optional exhaustive ``columns`` (test accuracy, ...);
* ``meta``: provenance (repository, file, commit, license or the generator's command and seeds),
  units, defaults;
* ``float_state``: for a generated table, the float network's weights every entry was retrained
  from (a state_dict as numpy arrays), so its live problem is the same network on every machine.

The generic on-disk format is a compressed ``.npz`` (:func:`save_table`, :func:`load_npz`): arrays
under fixed names and one JSON string ``meta``. :func:`load_table` resolves a registered name
(:data:`TABLES`) or a path; :func:`register_table` adds a name.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import hw_sim

DATA_DIR = Path(__file__).resolve().parent.parent / "table_data"

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

    def __post_init__(self) -> None:
        n, nb = len(self.units), len(self.bits)
        if len(self.layers) != n or np.shape(self.weight_std) != (n,):
            raise ValueError(f"table {self.name!r}: layers/weight_std must have one entry per unit ({n})")
        want = (n, nb) if self.separable else (nb,) * n
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
        import hashlib

        h = hashlib.sha256(json.dumps([list(self.bits), self.separable, sorted(self.columns)]).encode())
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
        if self.separable:
            return self.score[np.arange(self.num_units), idx].sum(axis=-1)
        return self.score.reshape(-1)[self.flat_index(idx)]


# ---------------------------------------------------------------------------------- npz format

def save_table(table: PolicyTable, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` as a compressed ``.npz`` (atomically)."""
    from quant_envs.atomic_io import atomic_path

    arrays: dict[str, np.ndarray] = {
        "bits": np.asarray(table.bits, dtype=np.int64),
        "weight_std": np.asarray(table.weight_std, dtype=np.float64),
        "score": table.score,
        "layer_facts": np.array([[getattr(la, c) for c in LAYER_COLUMNS[:5]] + list(la.in_hw) for la in table.layers],
                                dtype=np.int64),
    }
    for hw, metrics in table.costs.items():
        for m, arr in metrics.items():
            arrays[f"cost__{hw}__{m}"] = np.asarray(arr, dtype=np.float64)
    for k, arr in table.columns.items():
        arrays[f"column__{k}"] = arr
    for k, arr in table.float_state.items():
        arrays[f"float__{k}"] = np.asarray(arr)
    header = {
        "name": table.name, "units": [list(u) for u in table.units],
        "layer_names": [la.name for la in table.layers], "layer_kinds": [la.kind for la in table.layers],
        "metric_units": table.metric_units, "separable": table.separable, "score_name": table.score_name,
        "score_scale": table.score_scale, "regret_unit": table.regret_unit, "score_offset": table.score_offset,
        "default_hardware": table.default_hardware, "default_budget": table.default_budget,
        "default_reward_scale": table.default_reward_scale, "meta": table.meta,
    }
    arrays["header"] = np.array(json.dumps(header))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, allow_pickle=True, **arrays)  # the default, named: the arrays are keywords too
    return Path(path)


def hw_sim_costs(shapes: list[dict[str, Any]], bits: tuple[int, ...]
                 ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """[layers, bits] latency, energy and size (w == a) of every ``hw_sim`` profile for layers given
    as ``hw_sim.LayerShape`` fields; profiles refusing a width are skipped (name -> reason)."""
    import hw_sim

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
    from hw_sim.metrics import METRICS

    idx = np.arange(table.n_bits)
    return {m: np.asarray(table.metric_array(m))[:, idx, idx].copy() for m in METRICS}


def load_npz(path: str | os.PathLike[str], live_costs: bool = True) -> PolicyTable:
    """Read a table written by :func:`save_table`.

    With ``live_costs`` (default) a table that records its layers' ``hw_sim`` shapes
    (``meta["hw_layer_shapes"]``) takes its costs from the current ``hw_sim`` models, so its masks
    and budgets stay those of ``MixedPrecision-v0``; the shipped costs (from the generation) are
    used otherwise, or when the current ``hw_sim`` cannot rebuild them.
    """
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["header"]))
        facts = z["layer_facts"]
        layers = tuple(
            TableLayer(name=n, kind=k, c_in=int(f[0]), c_out=int(f[1]), stride=int(f[2]), kernel=int(f[3]),
                       num_weights=int(f[4]), in_hw=(int(f[5]), int(f[6])))
            for n, k, f in zip(header["layer_names"], header["layer_kinds"], facts))
        costs: dict[str, dict[str, np.ndarray]] = {}
        columns, float_state = {}, {}
        for key in z.files:
            if key.startswith("cost__"):
                _, hw, m = key.split("__")
                costs.setdefault(hw, {})[m] = z[key]
            elif key.startswith("column__"):
                columns[key[len("column__"):]] = z[key]
            elif key.startswith("float__"):
                float_state[key[len("float__"):]] = z[key]
        bits = tuple(int(b) for b in z["bits"])
        meta = dict(header["meta"])
        meta["costs_source"] = "shipped (hw_sim at generation)"
        if live_costs and "hw_layer_shapes" in meta:
            try:
                live, _ = hw_sim_costs(meta["hw_layer_shapes"], bits)
            except (TypeError, ValueError) as e:  # hw_sim changed its layer description
                import warnings

                warnings.warn(f"table {header['name']!r}: shipped costs used; hw_sim cannot rebuild them: {e}",
                              stacklevel=2)
            else:
                costs, meta["costs_source"] = live, "hw_sim (live)"
        return PolicyTable(
            name=header["name"], bits=bits, units=tuple(tuple(u) for u in header["units"]),
            layers=layers, weight_std=z["weight_std"], costs=costs, metric_units=header["metric_units"],
            score=z["score"], separable=header["separable"], score_name=header["score_name"],
            score_scale=header["score_scale"], regret_unit=header["regret_unit"],
            score_offset=header["score_offset"], columns=columns, default_hardware=header["default_hardware"],
            default_budget=header["default_budget"], default_reward_scale=header["default_reward_scale"],
            meta=meta, float_state=float_state,
        )


# ------------------------------------------------------------------------------------ registry

def _hawq(network: str) -> Callable[[], PolicyTable]:
    def build() -> PolicyTable:
        from quant_envs.mixed_precision.tables.hawq import hawq_v3_table

        return hawq_v3_table(network)

    return build


def _npz(filename: str) -> Callable[[], PolicyTable]:
    return lambda: load_npz(DATA_DIR / filename)


#: Registered table names and how to build them.
TABLES: dict[str, Callable[[], PolicyTable]] = {
    "hawq-resnet18": _hawq("resnet18"),
    "hawq-resnet50": _hawq("resnet50"),
    # every policy of the 4-layer digits CNN at 2..8 bits, generated by make_table (its meta: the command)
    "digits-cnn": _npz("digits_cnn.npz"),
    # every policy of the 5-layer MNIST-1D CNN at {2, 3, 4, 8} bits, the task's own retraining (make_table)
    "mnist1d-small": _npz("mnist1d_small.npz"),
}


def register_table(name: str, loader: Callable[[], PolicyTable] | str | os.PathLike[str]) -> None:
    """Register a table under ``name``: a function building it, or the path of an ``.npz``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"name={name!r} must be a non-empty string")
    TABLES[name] = loader if callable(loader) else functools.partial(load_npz, Path(loader))
    load_table.cache_clear()


@functools.cache
def load_table(name: str) -> PolicyTable:
    """The table registered as ``name``, or read from ``name`` as an ``.npz`` path (cached)."""
    if not isinstance(name, str):
        raise TypeError(f"table={name!r} must be a registered name or a path, got {type(name).__name__}")
    if name in TABLES:
        return TABLES[name]()
    if name.endswith(".npz") and Path(name).exists():
        return load_npz(name)
    raise ValueError(f"table={name!r} is not allowed; expected one of {sorted(TABLES)} or the path of an .npz table")
