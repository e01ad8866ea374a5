"""Deprecated alias of :mod:`quant_envs.mixed_precision.tables.regret` (regret curves of table
benchmarks); import from there.

Importing ``quant_envs.mixed_precision.regret`` gives that module itself (``sys.modules`` holds it
under both names), so every name, private ones included, and every monkeypatch reach the same
objects.
"""

import sys
import warnings
from typing import TYPE_CHECKING

from quant_envs.mixed_precision.tables import regret as _new

if TYPE_CHECKING:  # what type checkers see; at run time this name is that module itself
    from quant_envs.mixed_precision.tables.regret import *  # noqa: F403

warnings.warn("quant_envs.mixed_precision.regret is deprecated; "
              "import quant_envs.mixed_precision.tables.regret",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
