"""Deprecated alias of :mod:`quant_envs.mixed_precision.tables.env` (``quant_envs/MixedPrecisionTable-v0``'s environment); import from there.

Importing ``quant_envs.mixed_precision.table_env`` gives that module itself (``sys.modules`` holds it under both
names), so every name, private ones included, and every monkeypatch reach the same objects.
"""

import sys
import warnings

from quant_envs.mixed_precision.tables import env as _new

warnings.warn("quant_envs.mixed_precision.table_env is deprecated; import quant_envs.mixed_precision.tables.env",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
