"""Deprecated alias: the table code moved into :mod:`quant_envs.mixed_precision.tables`; import from
there. This module re-exports what it held:

* the type: :mod:`~quant_envs.mixed_precision.tables.policy_table` (``PolicyTable``, ``TableLayer``,
  ``LAYER_COLUMNS``);
* the ``hw_sim`` costs: :mod:`~quant_envs.mixed_precision.tables.costs` (``hw_sim_costs``,
  ``equal_width_costs``);
* the format: :mod:`~quant_envs.mixed_precision.tables.npz` (``save_table``, ``load_npz``);
* the registry: :mod:`~quant_envs.mixed_precision.tables.registry` (``TABLES``, ``register_table``,
  ``load_table``), and ``DATA_DIR`` from :mod:`quant_envs.mixed_precision.tables`.

``TABLES`` is the registry's own dict, so registering through either name reaches the same tables.
"""

import warnings

from quant_envs.mixed_precision.tables import DATA_DIR
from quant_envs.mixed_precision.tables.costs import equal_width_costs, hw_sim_costs
from quant_envs.mixed_precision.tables.npz import load_npz, save_table
from quant_envs.mixed_precision.tables.policy_table import LAYER_COLUMNS, PolicyTable, TableLayer
from quant_envs.mixed_precision.tables.registry import TABLES, load_table, register_table

__all__ = ["DATA_DIR", "LAYER_COLUMNS", "TABLES", "PolicyTable", "TableLayer", "equal_width_costs",
           "hw_sim_costs", "load_npz", "load_table", "register_table", "save_table"]

warnings.warn("quant_envs.mixed_precision.table is deprecated; import "
              "quant_envs.mixed_precision.tables (policy_table, costs, npz, registry)",
              DeprecationWarning, stacklevel=2)
