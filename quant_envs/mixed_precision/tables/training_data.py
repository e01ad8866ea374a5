"""The live training set shipped beside a surrogate table (``meta["samples_file"]``): where it lies
and its contents, checked against the digest the table records."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from quant_envs.mixed_precision.tables import DATA_DIR
from quant_envs.mixed_precision.tables.policy_table import PolicyTable

__all__ = ["file_sha256", "samples_path", "training_samples"]


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def samples_path(table: PolicyTable) -> Path:
    """Where the training set of a surrogate table lies: ``meta["samples_file"]`` beside the file the
    table was read from (``meta["source_file"]``), else in the shipped data folder."""
    if table.model is None or "samples_file" not in table.meta:
        raise ValueError(f"table {table.name!r} is not a surrogate table with a shipped training set")
    source = table.meta.get("source_file")
    return (Path(source).parent if source else DATA_DIR) / table.meta["samples_file"]


def training_samples(table: PolicyTable) -> dict[str, Any]:
    """The live training set a surrogate table was fitted to (``tables.sample``'s arrays: ``idx``,
    ``val_accuracy``, ``test_accuracy``, ``held_out``, ``kind``, ...), checked against its digest."""
    path = samples_path(table)
    if file_sha256(path) != table.meta["samples_sha256"]:
        raise ValueError(f"{path} does not match table {table.name!r}'s samples_sha256 (damaged or replaced?)")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
