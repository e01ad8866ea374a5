"""Precomputed per-layer costs over a grid of (weight bits, activation bits), for fast policy queries.

A mixed-precision policy assigns each layer a (w_bits, a_bits) pair; its cost is the sum of the
layers' table entries (latency, energy and size are additive over layers: layers run one after
another). The table also answers what exact action masking needs: the cheapest cost of each layer
under a set of allowed widths, and the cheapest cost to complete a policy from any layer on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, NoReturn, TypeAlias

import numpy as np

from hw_sim.accelerators import Accelerator
from hw_sim.checks import check_choice, check_int
from hw_sim.layer import LayerShape
from hw_sim.metrics import METRIC_INFO, METRICS, UNITS  # noqa: F401  (UNITS re-exported)
from hw_sim.profiles import get_accelerator

_INVALID = np.iinfo(np.intp).max // 4  # an index no table has

#: Widths allowed on one axis of one layer: None (all), one width, or an iterable of widths.
AxisWidths: TypeAlias = int | np.integer | Iterable[int] | None
#: Widths allowed at one layer: None (all) or a (w_bits allowed, a_bits allowed) pair.
LayerWidths: TypeAlias = tuple[AxisWidths, AxisWidths] | list[AxisWidths] | None
#: Widths allowed over the network: None (all), a bool mask [layers, n_bits, n_bits], or one
#: LayerWidths per layer (see :meth:`CostTable.allowed_mask`).
Allowed: TypeAlias = np.ndarray | Sequence[LayerWidths] | None


class PolicyCost(NamedTuple):
    # the cost fields of hw_sim.metrics.METRIC_INFO, in METRICS order (tests/test_hw_sim_table.py checks)
    latency_s: float
    energy_j: float
    size_bytes: float


class CostTable:
    """Costs of every layer at every (w_bits, a_bits) in ``bits`` on one accelerator.

    Arrays (float64, read-only, shape ``[layers, len(bits), len(bits)]``, axis 1 = weight bits,
    axis 2 = activation bits): ``latency`` (s), ``energy`` (J), ``size`` (bytes of weights),
    plus ``dram_bytes``, ``cycles`` and ``memory_bound`` (bool).

    Queries:

    * :meth:`policy_cost` - one metric of a whole policy given per-layer bit widths;
      :meth:`policy_cost_index` - the same from indices into :attr:`bits` (the fast path);
      :meth:`policy_costs` - all three metrics at once.
    * :meth:`min_layer_cost` - per-layer minimum under optional allowed widths;
      :meth:`min_completion_cost` - suffix sums of those minima (length ``layers + 1``, last 0):
      the cheapest possible cost of layers ``i..L-1``.
    * :meth:`bit_index` - position of a width on the bit axis.
    """

    def __init__(
        self,
        layers: Sequence[LayerShape],
        accelerator: Accelerator | str,
        bits: Iterable[int] = range(2, 9),
        batch: int | None = None,
    ) -> None:
        self.accelerator = get_accelerator(accelerator)
        if isinstance(layers, LayerShape) or not isinstance(layers, Iterable):
            raise TypeError(f"layers must be a sequence of hw_sim.LayerShape, got {type(layers).__name__}")
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers=() is not allowed; expected at least one hw_sim.LayerShape")
        for i, layer in enumerate(layers):
            if not isinstance(layer, LayerShape):
                raise TypeError(
                    f"layers[{i}]={layer!r} must be a hw_sim.LayerShape, got {type(layer).__name__}"
                )
        self.layers = layers
        # the accelerator's own setting by default (HAQ: edge batch 1, cloud batch 16)
        default = getattr(self.accelerator, "default_batch", 1)
        self.batch = check_int("batch", default if batch is None else batch, min_value=1)
        bit_list = [self.accelerator.check_bits("bits", b) for b in bits]
        if not bit_list:
            raise ValueError("bits is empty; expected at least one bit width")
        if len(set(bit_list)) != len(bit_list) or sorted(bit_list) != bit_list:
            raise ValueError(
                f"bits={bit_list!r} is not allowed; expected strictly increasing bit widths"
            )
        self.bits = np.asarray(bit_list, dtype=np.int64)
        self.bits.flags.writeable = False

        nb = len(bit_list)
        r = self.accelerator.evaluate(
            layers, self.bits.reshape(1, nb, 1), self.bits.reshape(1, 1, nb), self.batch
        )
        full = (len(layers), nb, nb)
        by_metric = {m: _frozen(getattr(r, info.cost_field), full) for m, info in METRIC_INFO.items()}
        self.latency, self.energy, self.size = by_metric["latency"], by_metric["energy"], by_metric["size"]
        self.dram_bytes = _frozen(r.dram_bytes, full)
        self.cycles = _frozen(r.cycles, full)
        self.memory_bound = _frozen(r.memory_bound, full, dtype=bool)

        # lookups for the fast policy queries: one fancy-indexing op and one dot product each
        self._by_metric = by_metric
        self._stack = np.stack(list(self._by_metric.values()))  # [3, layers, nb, nb], PolicyCost's order
        self._rows = np.arange(len(layers), dtype=np.intp)
        self._ones = np.ones(len(layers))
        # bit width -> index; anything else (0, too large, clipped negatives) -> an index that is
        # out of range for the tables, so the table lookup itself raises
        self._lut = np.full(int(self.bits[-1]) + 2, _INVALID, dtype=np.intp)
        self._lut[self.bits] = np.arange(nb)
        self._nb = nb

    # ------------------------------------------------------------------ basics
    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def n_bits(self) -> int:
        return self._nb

    def metric(self, metric: str) -> np.ndarray:
        """The [layers, w-bits, a-bits] array of ``metric`` ("latency", "energy" or "size")."""
        check_choice("metric", metric, METRICS)
        table = self._by_metric[metric]
        if np.isnan(table).all():
            raise ValueError(
                f"metric={metric!r} is not allowed on accelerator {self.accelerator.name!r}: its "
                "source publishes no such figure"
            )
        return table

    def metric_array(self, metric: str) -> np.ndarray:
        """Like :meth:`metric`, but an unpublished metric of a measured table is returned (NaN)
        rather than refused."""
        check_choice("metric", metric, METRICS)
        return self._by_metric[metric]

    def bit_index(self, bits: int | Iterable[int]) -> int | np.ndarray:
        """Index of ``bits`` on the table's bit axis (an int, or an array for several widths)."""
        arr = np.asarray(bits)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"bits={bits!r} must be integer bit widths")
        idx = self._lookup(arr, "bits")
        return int(idx) if idx.ndim == 0 else idx

    def _lookup(self, arr: np.ndarray, name: str) -> np.ndarray:
        """Bit widths -> indices on the bit axis; ValueError naming any width not in :attr:`bits`."""
        idx = self._lut.take(arr, mode="clip")
        bad = (arr < 1) | (idx == _INVALID)
        if np.any(bad):
            shown = ", ".join(str(b) for b in self.bits)
            wrong = np.unique(np.asarray(arr)[bad] if np.ndim(arr) else arr).tolist()
            raise ValueError(f"{name} contains {wrong!r}, not allowed; expected widths in: {shown}")
        return idx

    def bound(self, layer: int, w_bits: int, a_bits: int) -> str:
        """ "memory" or "compute" for one table entry."""
        i = check_int("layer", layer, min_value=-self.n_layers, max_value=self.n_layers - 1)
        return (
            "memory"
            if self.memory_bound[i, self.bit_index(w_bits), self.bit_index(a_bits)]
            else "compute"
        )

    # ------------------------------------------------------------------ whole policies
    def _bit_indices(self, w_bits, a_bits) -> tuple[np.ndarray, np.ndarray]:
        w = np.asarray(w_bits)
        if a_bits is None:
            if w.ndim != 2 or w.shape[1] != 2:
                raise ValueError(
                    f"w_bits with shape {w.shape} is not allowed without a_bits; expected "
                    f"[{self.n_layers}, 2] (w_bits, a_bits) pairs"
                )
            w, a = w[:, 0], w[:, 1]
        else:
            a = np.asarray(a_bits)
        try:
            return self._lut.take(w, mode="clip"), self._lut.take(a, mode="clip")
        except TypeError:
            raise TypeError(
                f"w_bits/a_bits must hold integer bit widths, got dtypes {w.dtype}, {a.dtype}"
            ) from None

    def _gather(self, table: np.ndarray, wi, ai, w_bits, a_bits, by_index: bool) -> np.ndarray:
        try:
            vals = table[..., self._rows, wi, ai] if table.ndim == 4 else table[self._rows, wi, ai]
        except (IndexError, TypeError, ValueError):
            vals = None
        if vals is None or vals.shape[-1] != self.n_layers:
            self._raise_bad_policy(w_bits, a_bits, by_index)
        return vals

    def _raise_bad_policy(self, w, a, by_index: bool) -> NoReturn:
        names = ("w_index", "a_index") if by_index else ("w_bits", "a_bits")
        if a is None and not by_index:
            arr = np.asarray(w)
            w, a = arr[:, 0], arr[:, 1]
        for name, v in zip(names, (w, a), strict=True):
            v = np.asarray(v)
            if v.ndim > 1 or (v.ndim == 1 and v.shape[0] not in (1, self.n_layers)):
                raise ValueError(
                    f"{name} has shape {v.shape}, not allowed; expected ({self.n_layers},) (one per layer)"
                )
            if v.dtype.kind not in "iu":
                raise TypeError(f"{name} must hold integers, got dtype {v.dtype}")
            if by_index:
                if ((v < -self._nb) | (v >= self._nb)).any():
                    raise ValueError(
                        f"{name} contains {np.unique(v[(v < -self._nb) | (v >= self._nb)]).tolist()!r}, not "
                        f"allowed; expected indices in [0, {self._nb - 1}] into bits={self.bits.tolist()}"
                    )
            else:
                self._lookup(v, name)
        raise ValueError(
            f"{names[0]}/{names[1]} do not form a policy of {self.n_layers} layers"
        )  # pragma: no cover

    def policy_cost(self, w_bits, a_bits=None, metric: str = "latency") -> float:
        """Sum over layers of ``metric`` for per-layer bit widths.

        ``w_bits``, ``a_bits``: sequences (or int arrays) of length ``layers`` holding widths from
        :attr:`bits` (a single int applies to every layer); or ``a_bits=None`` and ``w_bits`` an
        ``[layers, 2]`` array of (w_bits, a_bits) pairs.
        """
        table = self._by_metric.get(metric)
        if table is None:
            check_choice("metric", metric, METRICS)
            raise AssertionError(metric)  # unreachable: check_choice raised (a known metric has a table)
        wi, ai = self._bit_indices(w_bits, a_bits)
        return float(self._gather(table, wi, ai, w_bits, a_bits, False).dot(self._ones))

    def policy_costs(self, w_bits, a_bits=None) -> PolicyCost:
        """All three metrics of a policy: ``PolicyCost(latency_s, energy_j, size_bytes)``."""
        wi, ai = self._bit_indices(w_bits, a_bits)
        total = self._gather(self._stack, wi, ai, w_bits, a_bits, False).dot(self._ones)
        return PolicyCost(*(float(t) for t in total))

    def policy_cost_index(self, w_index, a_index, metric: str = "latency") -> float:
        """Fast path: ``metric`` of a policy given integer *indices* into :attr:`bits`.

        ``w_index``, ``a_index``: int arrays of length ``layers`` (a single int applies to every
        layer; negative indices count from the end, as in numpy). Out-of-range indices raise
        ValueError.
        """
        table = self._by_metric.get(metric)
        if table is None:
            check_choice("metric", metric, METRICS)
            raise AssertionError(metric)  # unreachable: check_choice raised (a known metric has a table)
        try:  # the common case inline: one gather, one dot product
            vals = table[self._rows, w_index, a_index]
            if vals.shape == self._ones.shape:
                return float(vals.dot(self._ones))
        except (IndexError, TypeError, ValueError):
            pass
        return float(self._gather(table, w_index, a_index, w_index, a_index, True).dot(self._ones))

    # ------------------------------------------------------------------ masking support
    def allowed_mask(self, allowed: Allowed = None) -> np.ndarray:
        """Normalise an ``allowed`` specification to a bool mask ``[layers, n_bits, n_bits]``.

        ``allowed`` is None (every width), a bool array of that shape, or a sequence with one item
        per layer: None (every width) or a pair ``(w_bits, a_bits)`` whose members are None or
        iterables of allowed widths, e.g. ``[([8], [8])] + [None] * (L - 2) + [([8], [8])]``
        fixes the first and last layers at 8 bits, and ``(None, [4])`` at a layer whose weight
        width is still open but whose activation width is 4.
        """
        shape = (self.n_layers, self._nb, self._nb)
        if allowed is None:
            return np.ones(shape, dtype=bool)
        if isinstance(allowed, np.ndarray):
            if allowed.dtype != bool or allowed.shape != shape:
                raise ValueError(
                    f"allowed mask with dtype {allowed.dtype} and shape {allowed.shape} is not allowed; "
                    f"expected a bool array of shape {shape}"
                )
            return allowed
        items = list(allowed)
        if len(items) != self.n_layers:
            raise ValueError(
                f"allowed has {len(items)} items, not allowed; expected one per layer ({self.n_layers})"
            )
        mask = np.zeros(shape, dtype=bool)
        for i, item in enumerate(items):
            if item is None:
                mask[i] = True
                continue
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError(
                    f"allowed[{i}]={item!r} is not allowed; expected None or a (w_bits, a_bits) pair"
                )
            rows = self._axis_mask(item[0], f"allowed[{i}][0]")
            cols = self._axis_mask(item[1], f"allowed[{i}][1]")
            mask[i] = rows[:, None] & cols[None, :]
        return mask

    def _axis_mask(self, widths: AxisWidths, name: str) -> np.ndarray:
        if widths is None:
            return np.ones(self._nb, dtype=bool)
        arr = np.asarray([widths] if isinstance(widths, (int, np.integer)) else list(widths))
        sel = np.zeros(self._nb, dtype=bool)
        if arr.size:
            if arr.dtype.kind not in "iu":
                raise TypeError(f"{name}={widths!r} must hold integer bit widths")
            sel[self._lookup(arr, name)] = True
        return sel

    def min_layer_cost(self, metric: str, allowed: Allowed = None) -> np.ndarray:
        """Per-layer minimum of ``metric`` over the allowed (w_bits, a_bits); shape ``[layers]``."""
        table = self.metric(metric)
        if allowed is None:
            return table.reshape(self.n_layers, -1).min(axis=1)
        mask = self.allowed_mask(allowed)
        empty = ~mask.reshape(self.n_layers, -1).any(axis=1)
        if empty.any():
            raise ValueError(
                f"allowed leaves no bit widths for layer(s) {np.flatnonzero(empty).tolist()}; "
                "expected at least one allowed (w_bits, a_bits) per layer"
            )
        return np.where(mask, table, np.inf).reshape(self.n_layers, -1).min(axis=1)

    def min_completion_cost(self, metric: str, allowed: Allowed = None) -> np.ndarray:
        """Cheapest ``metric`` of layers ``i..L-1`` for every ``i``: length ``layers + 1``, last 0.

        ``out[i] = sum(min_layer_cost(metric, allowed)[i:])``. An environment that has spent ``c``
        on layers ``0..i-1`` can still meet budget ``B`` iff ``c + out[i] <= B``.
        """
        per_layer = self.min_layer_cost(metric, allowed)
        out = np.zeros(self.n_layers + 1)
        out[:-1] = np.cumsum(per_layer[::-1])[::-1]
        return out

    # ------------------------------------------------------------------ export
    def rows(self) -> list[dict[str, Any]]:
        """One dict per (layer, w_bits, a_bits): the table in long form (SI units)."""
        out = []
        for i, layer in enumerate(self.layers):
            for wi, wb in enumerate(self.bits):
                for ai, ab in enumerate(self.bits):
                    out.append(
                        {
                            "layer": i,
                            "kind": layer.kind,
                            "w_bits": int(wb),
                            "a_bits": int(ab),
                            **{
                                m.cost_field: float(self._by_metric[m.name][i, wi, ai])
                                for m in METRIC_INFO.values()
                            },
                            "dram_bytes": float(self.dram_bytes[i, wi, ai]),
                            "cycles": float(self.cycles[i, wi, ai]),
                            "bound": (
                                ("memory" if self.memory_bound[i, wi, ai] else "compute")
                                if self.accelerator.reports_bound
                                else "n/a"
                            ),
                        }
                    )
        return out

    def __repr__(self) -> str:
        return (
            f"CostTable(layers={self.n_layers}, accelerator={self.accelerator.name!r}, "
            f"bits={self.bits.tolist()}, batch={self.batch})"
        )


def _frozen(arr: np.ndarray, shape: tuple[int, ...], dtype=float) -> np.ndarray:
    out = np.array(np.broadcast_to(arr, shape), dtype=dtype)
    out.flags.writeable = False
    return out
