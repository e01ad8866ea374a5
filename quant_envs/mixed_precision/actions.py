"""The action rules shared by the mixed-precision environments (live and table-backed).

Discrete (:func:`choose_width`): an action is an index into the environment's widths. A masked
index is either refused (``invalid_action="raise"``) or projected onto the nearest allowed index,
ties to the narrower width (``"project"``); the projection is reported as ``{"projected_from": index}``.

Continuous (:func:`choose_continuous_width`, HAQ's ``Box(0, 1, (1,))`` action): with ``n`` allowed
widths (ascending), action ``u`` selects allowed width number ``min(floor(u * n), n - 1)``;
:func:`continuous_action_for` is its inverse (the middle of a width's interval), which a replay of a
policy file sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np

INVALID_ACTION_MODES = ("project", "raise")

#: An action of the mixed-precision environments: an index into the widths (a Python or numpy
#: integer, or the 0-d integer array SB3 hands over); the continuous version takes an array of one
#: number in [0, 1].
Action: TypeAlias = int | np.integer | np.ndarray


def choose_width(action: Action, mask: np.ndarray, bits: Sequence[int], invalid_action: str,
                 step: int) -> tuple[int, dict[str, Any]]:
    """The width index applied for ``action`` under ``mask`` at ``step``, and the info it adds."""
    if isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu":
        action = int(action)  # SB3 hands over 0-d integer arrays
    if isinstance(action, bool) or not isinstance(action, (int, np.integer)) or not 0 <= action < len(bits):
        raise ValueError(f"action={action!r} is not allowed; expected an integer in [0, {len(bits) - 1}]")
    j = int(action)
    if mask[j]:
        return j, {}
    allowed = np.flatnonzero(mask)
    if invalid_action == "raise":
        raise ValueError(
            f"action={j} ({bits[j]} bits) is masked at step {step}; allowed actions: {allowed.tolist()} "
            f"(bits {[bits[k] for k in allowed.tolist()]}); pass invalid_action='project' to project instead"
        )
    nearest = int(allowed[np.argmin(np.abs(allowed - j) + 1e-3 * (allowed > j))])
    return nearest, {"projected_from": j}


def choose_continuous_width(action: Action, mask: np.ndarray) -> int:
    """The width index HAQ's continuous ``action`` (one number in [0, 1]) selects among ``mask``'s
    allowed widths: equal-length intervals of [0, 1] in ascending order of width (a number outside
    [0, 1] is clipped; anything but one finite number raises ``ValueError``)."""
    try:  # strings are never numbers, though numpy would parse "0.5"
        if isinstance(action, (str, bytes)) or np.asarray(action).dtype.kind not in "iuf":
            raise TypeError
        u = np.asarray(action, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"action={action!r} is not allowed; expected one finite number in [0, 1]") from None
    if u.shape != (1,) or not np.isfinite(u[0]):
        raise ValueError(f"action={action!r} is not allowed; expected one finite number in [0, 1]")
    u0 = float(np.clip(u[0], 0.0, 1.0))
    allowed = np.flatnonzero(mask)
    return int(allowed[min(int(u0 * len(allowed)), len(allowed) - 1)])


def continuous_action_for(index: int, mask: np.ndarray) -> np.ndarray:
    """The continuous action (float32, shape (1,)) that :func:`choose_continuous_width` maps onto
    width ``index`` under ``mask``: the middle of its interval. ``index`` must be allowed."""
    allowed = np.flatnonzero(mask)
    if index not in allowed:
        raise ValueError(f"index={index!r} is not allowed by the mask; allowed: {allowed.tolist()}")
    position = int(np.searchsorted(allowed, index))
    return np.array([(position + 0.5) / len(allowed)], dtype=np.float32)
