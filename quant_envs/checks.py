"""Argument checks that fail early with a message naming the argument, the value and what is allowed.

Every public constructor and solver in quant-envs, baselines and agents validates its input with
these, so a user sees ``ValueError: levels=1 is not allowed; expected an integer >= 2`` instead of
a traceback from deep inside numpy or torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

# hw_sim (the bottom layer) owns the integer and choice checks; quant_envs shares them.
from hw_sim.checks import check_choice, check_int

__all__ = ["check_bool", "check_choice", "check_finite_array", "check_float", "check_int", "check_mapping"]


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (or numpy bool); strings such as "no" are never booleans."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name}={value!r} must be a bool (True or False), got {type(value).__name__}")


def check_mapping(name: str, value: Any) -> dict[str, Any]:
    """``value`` (a mapping with string keys, or None) as a new dict."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name}={value!r} must be a dict of keyword arguments or None, got {type(value).__name__}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise TypeError(f"{name}={value!r} has non-string keys {bad[:3]!r}; expected argument names")
    return dict(value)


def check_float(
    name: str,
    value: Any,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite float within the given bounds; strings are never numbers."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name}={value!r} must be a number, got {type(value).__name__}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={value!r} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} is not allowed; expected a finite number")
    _check_range(name, value, min_value, max_value, "a number", min_inclusive, max_inclusive)
    return value


def _check_range(
    name: str,
    value: float,
    lo: float | None,
    hi: float | None,
    what: str,
    lo_inclusive: bool = True,
    hi_inclusive: bool = True,
) -> None:
    too_low = lo is not None and (value < lo if lo_inclusive else value <= lo)
    too_high = hi is not None and (value > hi if hi_inclusive else value >= hi)
    if too_low or too_high:
        parts = []
        if lo is not None:
            parts.append(f"{'>=' if lo_inclusive else '>'} {lo}")
        if hi is not None:
            parts.append(f"{'<=' if hi_inclusive else '<'} {hi}")
        raise ValueError(f"{name}={value!r} is not allowed; expected {what} {' and '.join(parts)}")


def check_finite_array(name: str, value: Any, shape: tuple[int, ...], allowed: str) -> np.ndarray:
    """``value`` as a finite float64 array of exactly ``shape``; else ValueError naming ``name``.

    For environment actions: checked before any arithmetic, since NaN survives ``np.clip`` and a
    wrong shape would otherwise surface deep inside the model. ``allowed`` describes valid values.
    """
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not allowed; expected {allowed}") from None
    if a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape}, which is not allowed; expected shape {tuple(shape)}: {allowed}")
    if not np.all(np.isfinite(a)):
        bad = np.flatnonzero(~np.isfinite(a.reshape(-1)))
        raise ValueError(f"{name} with shape {a.shape} holds NaN or inf (entries {bad[:5].tolist()}: "
                         f"{a.reshape(-1)[bad[:5]].tolist()}), which is not allowed; expected {allowed}")
    return a

