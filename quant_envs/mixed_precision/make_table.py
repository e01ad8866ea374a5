"""Deprecated alias of :mod:`quant_envs.mixed_precision.tables.build` (the generator of exhaustive
tables); import from there.

Importing ``quant_envs.mixed_precision.make_table`` gives that module itself (``sys.modules`` holds
it under both names), so every name, private ones included, and every monkeypatch reach the same
objects. ``python -m quant_envs.mixed_precision.make_table`` runs ``python -m
quant_envs.mixed_precision.tables.build``.
"""

import sys
import warnings
from typing import TYPE_CHECKING

from quant_envs.mixed_precision.tables import build as _new

if TYPE_CHECKING:  # what type checkers see; at run time this name is that module itself
    from quant_envs.mixed_precision.tables.build import *  # noqa: F403

if __name__ == "__main__":
    raise SystemExit(_new.main())
warnings.warn("quant_envs.mixed_precision.make_table is deprecated; "
              "import quant_envs.mixed_precision.tables.build",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _new
