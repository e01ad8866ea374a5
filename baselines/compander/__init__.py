"""Non-RL solvers for companding scalar quantizers (the former module ``baselines/compander.py``)."""

from baselines.compander.solvers import *  # noqa: F403 - the module's public names, unchanged
from baselines.compander.solvers import (  # noqa: F401 - public names outside its __all__
    COLUMNS,
    MAX_CLI_LEVELS,
    MAX_CLI_SEGMENTS,
    __all__,
    format_table,
    plot_dynamic_range,
    writable_directory_problem,
)
