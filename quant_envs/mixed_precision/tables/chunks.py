"""Resumable work directories of generated data, each chunk labelled with the numerics that made it.

A generator (:mod:`~quant_envs.mixed_precision.tables.build`, :mod:`~quant_envs.mixed_precision.tables.sample`)
writes its results in chunks (``chunk_00012.npy``), so that a run that stops is continued by the
same command. Retraining repeats bit for bit only under the same numerics
(:func:`~quant_envs.mixed_precision.tables.numerics.numerics`), so every chunk has a sidecar
(``chunk_00012.json``) naming the numerics of the process that computed it, and a run refuses to
add chunks to a work directory made under other numerics unless it is told to
(``--allow-mixed-numerics``); the finished data lists which numerics made which chunks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quant_envs.atomic_io import atomic_path, atomic_write_json
from quant_envs.mixed_precision.tables.numerics import numerics

#: The command-line flag that lets a run resume a work directory made under other numerics.
ALLOW_FLAG = "--allow-mixed-numerics"


class MixedNumericsError(ValueError):
    """A work directory holds chunks computed under other numerics than this process's."""


def generation_numerics() -> dict[str, str]:
    """:func:`numerics` plus the device the retraining runs on (torch's default device)."""
    return {**numerics(), "device": str(torch.empty(0).device)}


def sidecar(chunk_path: str | Path) -> Path:
    return Path(chunk_path).with_suffix(".json")


def write_chunk(chunk_path: str | Path, values: np.ndarray, allow_mixed: bool = False,
                float_sha256: str | None = None) -> None:
    """Write ``values`` to ``chunk_path`` (``.npy``) and its numerics (and the digest of the float
    network it was retrained from) to the sidecar, atomically: the sidecar first, so an existing
    ``.npy`` always has one."""
    atomic_write_json(sidecar(chunk_path), {"numerics": generation_numerics(), "allow_mixed_numerics": allow_mixed,
                                            "float_sha256": float_sha256})
    with atomic_path(chunk_path) as tmp:
        np.save(tmp, values)


def chunk_numerics(chunk_path: str | Path) -> dict[str, str] | None:
    """The numerics recorded beside a chunk (None where a chunk has no sidecar: made before they were recorded)."""
    path = sidecar(chunk_path)
    return json.loads(path.read_text())["numerics"] if path.exists() else None


def check_resume(chunk_paths: Iterable[str | Path], allow_mixed: bool, float_sha256: str | None = None) -> None:
    """Refuse (:class:`MixedNumericsError`) to add chunks beside finished ones made under other
    numerics than this process's, unless ``allow_mixed``; and, always, beside chunks retrained from
    another float network than ``float_sha256`` (a float network trained under other numerics is
    another benchmark, not a rounding difference)."""
    here = generation_numerics()
    for path in chunk_paths:
        if not Path(path).exists():
            continue
        recorded = json.loads(sidecar(path).read_text()) if sidecar(path).exists() else {}
        theirs_float = recorded.get("float_sha256")
        if float_sha256 and theirs_float and theirs_float != float_sha256:
            raise MixedNumericsError(
                f"{Path(path).parent} holds {Path(path).name} retrained from float network {theirs_float[:16]}, "
                f"but this process's is {float_sha256[:16]} (trained here under other numerics, or another "
                f"task seed): {ALLOW_FLAG} cannot mix them. Resume where the work started, or give this "
                f"machine that float network (copy its QUANT_ENVS_CACHE model cache), or use another work directory")
        theirs = recorded.get("numerics")
        if theirs != here and not allow_mixed:
            raise MixedNumericsError(
                f"{Path(path).parent} holds {Path(path).name} computed under numerics {theirs or 'not recorded'}, "
                f"but this process has {here}: its results would not repeat bit for bit. Resume on the machine "
                f"(and ATEN_CPU_CAPABILITY) that started it, use another work directory, or pass {ALLOW_FLAG} "
                f"to mix them (every chunk keeps its own numerics in the data's meta)")


def _ranges(ks: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    out, start = [], 0
    for i, a in enumerate(ks):
        if i + 1 == len(ks) or ks[i + 1] != a + 1:
            out.append(f"{ks[start]}-{a}" if a != ks[start] else f"{a}")
            start = i + 1
    return ",".join(out)


def numerics_meta(chunk_paths: list[str | Path]) -> dict[str, Any]:
    """Meta fields naming which numerics made which chunks (by chunk number), and the numerics of
    the whole: the one set where all agree, ``"mixed"`` in every field otherwise (so a live re-check
    never takes the data for its own numerics)."""
    groups: dict[str, list[int]] = {}
    for k, path in enumerate(chunk_paths):
        groups.setdefault(json.dumps(chunk_numerics(path), sort_keys=True), []).append(k)
    by_chunk = [{"numerics": json.loads(key), "chunks": _ranges(ks), "count": len(ks)} for key, ks in groups.items()]
    if len(groups) == 1:
        whole: dict[str, str] = dict(by_chunk[0]["numerics"] or {k: "not recorded" for k in generation_numerics()})
    else:
        whole = {k: "mixed" for k in generation_numerics()}
    return {**whole, "numerics_status": "single" if len(groups) == 1 else "mixed", "numerics_by_chunk": by_chunk}
