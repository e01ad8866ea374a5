"""Deprecated alias of :mod:`quant_envs.mixed_precision.tables.problem` (a table as a problem); import from there.

Importing ``quant_envs.mixed_precision.table_problem`` gives that module itself (``sys.modules`` holds it under both
names), so every name, private ones included, and every monkeypatch reach the same objects.
"""

import sys
import warnings

from quant_envs.mixed_precision.tables import problem as _new

warnings.warn("quant_envs.mixed_precision.table_problem is deprecated; import quant_envs.mixed_precision.tables.problem",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
