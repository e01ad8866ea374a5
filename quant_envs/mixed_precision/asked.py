"""What one environment instance has asked for before: its ``info["cached"]``.

An environment's ``info`` must depend on its own history only (Gymnasium's strict determinism:
two instances with the same seed and actions return equal ``info``). The evaluation cache of a
:func:`~quant_envs.mixed_precision.problem.shared_problem` is shared by every instance in the
process, so whether *it* held an answer depends on what other instances did; this record does not.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from quant_envs.checks import check_int


class AskedBefore:
    """The last ``size`` distinct keys (policy, fidelity, split) one environment asked for (LRU).

    :meth:`seen` answers whether a key was asked before and records it. ``size`` is the
    environment's ``cache_size``, so an environment alone with its problem reports ``cached``
    exactly when the problem answered from its cache; 0 keeps nothing (never cached).
    """

    def __init__(self, size: int) -> None:
        self.size = check_int("cache_size", size, min_value=0)
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def seen(self, key: Hashable) -> bool:
        """Whether ``key`` is among the last ``size`` distinct keys asked for; then record it."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        if self.size:
            self._keys[key] = None
            if len(self._keys) > self.size:
                self._keys.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._keys)
