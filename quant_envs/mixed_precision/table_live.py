"""Deprecated alias of :mod:`quant_envs.mixed_precision.tables.live` (a table's live problem and re-
checks); import from there.

Importing ``quant_envs.mixed_precision.table_live`` gives that module itself (``sys.modules`` holds
it under both names), so every name, private ones included, and every monkeypatch reach the same
objects. ``python -m quant_envs.mixed_precision.table_live`` runs ``python -m
quant_envs.mixed_precision.tables.live``.
"""

import sys
import warnings
from typing import TYPE_CHECKING

from quant_envs.mixed_precision.tables import live as _new

if TYPE_CHECKING:  # what type checkers see; at run time this name is that module itself
    from quant_envs.mixed_precision.tables.live import *  # noqa: F403

if __name__ == "__main__":
    raise SystemExit(_new.main())
warnings.warn("quant_envs.mixed_precision.table_live is deprecated; "
              "import quant_envs.mixed_precision.tables.live",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
