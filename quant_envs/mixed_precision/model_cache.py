"""Trained float models, built once and cached on disk.

The cache directory is, in order: the ``cache_dir`` argument, the ``QUANT_ENVS_CACHE`` environment
variable, ``~/.cache/quant_envs``. A file is written under a temporary name and renamed, so a crash
never leaves a half-written model; a file that cannot be read back (corrupt, truncated, from an
incompatible version) is rebuilt, never trusted.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from quant_envs._io import atomic_path

CACHE_ENV_VAR = "QUANT_ENVS_CACHE"
_FORMAT = 1


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The directory where trained float models are kept (see the module docstring)."""
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir={cache_dir!r} must be a path (str or os.PathLike), got {type(cache_dir).__name__}")
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    return Path.home() / ".cache" / "quant_envs"


def load_or_train(
    key: str,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], dict[str, Any]],
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Return the model cached under ``key``, or build, train and cache it.

    ``build()`` makes an untrained model; ``train(model)`` trains it in place and returns metadata
    (plain numbers and strings) stored beside the weights and returned on later loads.
    """
    path = resolve_cache_dir(cache_dir) / "models" / f"{key}.pt"
    model = build()
    if path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("format") != _FORMAT or blob.get("key") != key:
                raise ValueError("format or key mismatch")
            model.load_state_dict(blob["state_dict"])
            return model.eval(), dict(blob["meta"])
        except Exception as exc:  # any unreadable file is rebuilt, never trusted
            warnings.warn(f"cached model {path} is unreadable ({exc}); retraining it", stacklevel=2)
            model = build()
    meta = train(model)
    with atomic_path(path) as tmp:
        torch.save({"format": _FORMAT, "key": key, "state_dict": model.state_dict(), "meta": meta}, tmp)
    return model.eval(), meta
