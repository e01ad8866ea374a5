"""Deprecated alias of :mod:`quant_envs.mixed_precision.tables.hawq` (HAWQ-V3's published tables); import from there.

Importing ``quant_envs.mixed_precision.hawq_tables`` gives that module itself (``sys.modules`` holds it under both
names), so every name, private ones included, and every monkeypatch reach the same objects.
"""

import sys
import warnings

from quant_envs.mixed_precision.tables import hawq as _new

warnings.warn("quant_envs.mixed_precision.hawq_tables is deprecated; import quant_envs.mixed_precision.tables.hawq",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
