"""The discrete action rule shared by the mixed-precision environments (live and table-backed).

An action is an index into the environment's widths. A masked index is either refused
(``invalid_action="raise"``) or projected onto the nearest allowed index, ties to the narrower
width (``"project"``); the projection is reported as ``{"projected_from": index}``.
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
