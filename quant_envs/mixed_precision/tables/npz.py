"""The generic on-disk format of a :class:`~quant_envs.mixed_precision.tables.policy_table.PolicyTable`:
a compressed ``.npz`` with arrays under fixed names and one JSON string ``header``
(:func:`save_table`, :func:`load_npz`)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from quant_envs.atomic_io import atomic_path
from quant_envs.mixed_precision.tables.costs import hw_sim_costs
from quant_envs.mixed_precision.tables.policy_table import LAYER_COLUMNS, PolicyTable, TableLayer
from quant_envs.mixed_precision.tables.surrogate import SurrogateTable

#: Meta keys :func:`load_npz` adds (where the costs and the file came from): not saved.
LOADED_KEYS = ("costs_source", "source_file")


def save_table(table: PolicyTable, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` as a compressed ``.npz`` (atomically)."""
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
    if table.model is not None:
        arrays.update(table.model.arrays(prefix="model__"))
    header = {
        "name": table.name, "units": [list(u) for u in table.units],
        "layer_names": [la.name for la in table.layers], "layer_kinds": [la.kind for la in table.layers],
        "metric_units": table.metric_units, "separable": table.separable, "score_name": table.score_name,
        "score_scale": table.score_scale, "regret_unit": table.regret_unit, "score_offset": table.score_offset,
        "default_hardware": table.default_hardware, "default_budget": table.default_budget,
        "default_reward_scale": table.default_reward_scale,
        "meta": {k: v for k, v in table.meta.items() if k not in LOADED_KEYS},
    }
    arrays["header"] = np.array(json.dumps(header))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, allow_pickle=True, **arrays)  # the default, named: the arrays are keywords too
    return Path(path)



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
            elif key.startswith("float__"):  # (model__ keys: the surrogate, read below)
                float_state[key[len("float__"):]] = z[key]
        bits = tuple(int(b) for b in z["bits"])
        meta = dict(header["meta"])
        meta["costs_source"] = "shipped (hw_sim at generation)"
        meta["source_file"] = str(Path(path).resolve())  # where files shipped beside it are found
        if live_costs and "hw_layer_shapes" in meta:
            try:
                live, _ = hw_sim_costs(meta["hw_layer_shapes"], bits)
            except (TypeError, ValueError) as e:  # hw_sim changed its layer description
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
            model=SurrogateTable.from_arrays(z, prefix="model__") if "model__meta" in z.files else None,
        )

