"""Minimal argument checks for hw_sim (numpy only).

hw_sim must not import quant_envs (dependencies point one way: quant_envs -> hw_sim), so it carries
these few checks itself. Messages follow the house style: the argument, the value, what is allowed.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import Any


def check_int(
    name: str, value: Any, *, min_value: int | None = None, max_value: int | None = None
) -> int:
    """Return ``value`` as an int if it is an integer (not bool, not float) in [min_value, max_value]."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name}={value!r} must be an integer, got {type(value).__name__}"
        ) from None
    if (min_value is not None and value < min_value) or (
        max_value is not None and value > max_value
    ):
        parts = []
        if min_value is not None:
            parts.append(f">= {min_value}")
        if max_value is not None:
            parts.append(f"<= {max_value}")
        raise ValueError(
            f"{name}={value!r} is not allowed; expected an integer {' and '.join(parts)}"
        )
    return value


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``; otherwise raise ValueError listing them."""
    allowed = list(allowed)
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}={value!r} is not allowed; expected one of: {shown}")
    return value


def check_pair(name: str, value: Any, *, min_value: int | None = None) -> tuple[int, int]:
    """An int or a pair of ints -> a pair of ints, each >= ``min_value``."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{name}={value!r} is not allowed; expected an integer or a pair of integers"
            )
        return (
            check_int(f"{name}[0]", value[0], min_value=min_value),
            check_int(f"{name}[1]", value[1], min_value=min_value),
        )
    v = check_int(name, value, min_value=min_value)
    return (v, v)
