"""Trained float models, built once and cached on disk.

The cache directory is, in order: the ``cache_dir`` argument, the ``QUANT_ENVS_CACHE`` environment
variable, ``~/.cache/quant_envs``. A file is written under a temporary name and renamed, so a crash
never leaves a half-written model.

Each file carries a SHA-256 digest of its weights *and* of the metadata saved with them (the float
accuracies the rewards are measured against). On load the digest is recomputed and every
floating-point weight checked to be finite; a file that fails either check, or cannot be read back
at all (corrupt, truncated, from another format), is reported once with a warning and rebuilt,
never used. The directory is checked to be writable before any training starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quant_envs.atomic_io import atomic_path, check_writable_dir

CACHE_ENV_VAR = "QUANT_ENVS_CACHE"
_FORMAT = 2  # v2: content digest over weights and metadata


class CorruptCacheError(ValueError):
    """A cached file that must not be used (bad digest, non-finite weights, wrong format or key)."""


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory where trained float models are kept (see the module docstring)."""
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir={cache_dir!r} must be a path (str or os.PathLike), got {type(cache_dir).__name__}")
        if not str(cache_dir):
            raise ValueError("cache_dir='' is not allowed; expected a directory path")
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "quant_envs"


def state_digest(state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> str:
    """SHA-256 over every tensor (name, dtype, shape, bytes) and the JSON of ``meta``."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(dict(meta), sort_keys=True, default=str).encode())
    return h.hexdigest()


def non_finite_tensors(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or inf."""
    return [name for name, t in state_dict.items()
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _read(path: Path, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The checked state_dict and metadata in ``path``; CorruptCacheError when it must not be used."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a zip, unpickling refused: all mean "unreadable"
        raise CorruptCacheError(f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(blob, dict) or blob.get("format") != _FORMAT or blob.get("key") != key:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CorruptCacheError(f"format {found!r} or key differs from the expected {_FORMAT!r}/{key!r}")
    state, meta = blob.get("state_dict"), blob.get("meta")
    if not isinstance(state, dict) or not isinstance(meta, dict):
        raise CorruptCacheError("no state_dict or metadata")
    if blob.get("sha256") != state_digest(state, meta):
        raise CorruptCacheError("its content does not match its SHA-256 digest (modified or damaged on disk)")
    bad = non_finite_tensors(state)
    if bad:
        raise CorruptCacheError(f"NaN or inf in {', '.join(bad[:3])}")
    return state, meta


def load_or_train(
    key: str,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], dict[str, Any]],
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Return the model cached under ``key``, or build, train and cache it.

    ``build()`` makes an untrained model; ``train(model)`` trains it in place and returns metadata
    (plain numbers and strings) stored beside the weights, covered by the digest, and returned on
    later loads. Raises ValueError naming the directory when it is not writable (before training).
    """
    directory = resolve_cache_dir(cache_dir) / "models"
    path = directory / f"{key}.pt"
    model = build()
    if path.exists():
        try:
            state, meta = _read(path, key)
            model.load_state_dict(state)
            return model.eval(), dict(meta)
        except Exception as exc:  # never trusted: reported once, then rebuilt
            warnings.warn(f"cached model {path} is not used: {exc}; retraining it", stacklevel=2)
            model = build()
    where = "cache_dir" if cache_dir is not None else f"the model cache (cache_dir or ${CACHE_ENV_VAR})"
    check_writable_dir(directory, where)  # before the training, not after it
    meta = train(model)
    bad = non_finite_tensors(model.state_dict())
    if bad:
        raise RuntimeError(f"training the float model {key!r} gave NaN or inf weights in {', '.join(bad[:3])}; "
                           "not caching it (lower the learning rate?)")
    state = model.state_dict()
    blob = {"format": _FORMAT, "key": key, "state_dict": state, "meta": meta, "sha256": state_digest(state, meta)}
    try:
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)
    except OSError as exc:  # e.g. a full disk: the trained model is still right, only not kept
        warnings.warn(f"could not save the trained model to {path} ({exc.strerror or exc}); "
                      "using it without caching", stacklevel=2)
    return model.eval(), meta
