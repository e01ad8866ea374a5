"""Deprecated alias of :mod:`quant_envs.mixed_precision.tables.policy_table` (the table type, its ``.npz`` format and the registry of table names); import from there.

Importing ``quant_envs.mixed_precision.table`` gives that module itself (``sys.modules`` holds it under both
names), so every name, private ones included, and every monkeypatch reach the same objects.
"""

import sys
import warnings

from quant_envs.mixed_precision.tables import policy_table as _new

warnings.warn("quant_envs.mixed_precision.table is deprecated; import quant_envs.mixed_precision.tables.policy_table",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
