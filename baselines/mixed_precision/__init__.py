"""Non-RL solvers of the mixed-precision quantization problem (``quant_envs/MixedPrecision-v0``).

One interface: :func:`solve` ``(problem_or_env, method, max_evaluations=200, seed=0,
equal_bits=None, **options) -> SearchResult``; the methods are listed in :data:`METHODS` and
described in :mod:`baselines.mixed_precision.solvers`. Command line::

    python -m baselines.mixed_precision --method hawq_v3 --task mnist1d-cnn --budget-fraction 0.25
    python -m baselines.mixed_precision --method all
"""

from baselines.mixed_precision.solvers import METHODS, SOLVERS, SearchResult, solve
from baselines.mixed_precision.space import SearchSpace, allowed_at_step

__all__ = ["METHODS", "SOLVERS", "SearchResult", "SearchSpace", "allowed_at_step", "main", "solve"]


def main(argv=None) -> int:
    # lazy: importing the CLI here would load it before `python -m baselines.mixed_precision.cli` runs it
    from baselines.mixed_precision.cli import main as _main

    return _main(argv)
