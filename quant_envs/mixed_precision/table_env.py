"""Deprecated alias of :mod:`quant_envs.mixed_precision.tables.env`
(``quant_envs/MixedPrecisionTable-v0``'s environment); import from there.

Importing ``quant_envs.mixed_precision.table_env`` gives that module itself (``sys.modules`` holds
it under both names), so every name, private ones included, and every monkeypatch reach the same
objects.
"""

import sys
import warnings
from typing import TYPE_CHECKING

from quant_envs.mixed_precision.tables import env as _new

if TYPE_CHECKING:  # what type checkers see; at run time this name is that module itself
    from quant_envs.mixed_precision.tables.env import *  # noqa: F403

warnings.warn("quant_envs.mixed_precision.table_env is deprecated; "
              "import quant_envs.mixed_precision.tables.env",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
