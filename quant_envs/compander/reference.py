"""The optima the compander environments report and scale their rewards by.

An environment needs the best value of its own problem (to report ``sqnr_db - optimum`` and to
scale rewards), so those optima live here, beside the environments, and not in ``baselines``
(which import this package, never the other way). Two references, each cached per source and N:

* :func:`optimal_compander_reference` -- the optimal compander (Panter-Dite's cube-root-density
  compressor) with its support x_max optimised for SQNR: ``SplineCompander`` scores against it.
* :func:`lloyd_max_reference` -- the Lloyd-Max quantizer (Newton on the fixed-point conditions,
  :mod:`quant_envs.compander.lloyd`): ``ScalarQuantizer`` scores against it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from quant_envs.compander.compressor import OptimalCompressor, optimal_support
from quant_envs.compander.lloyd import solve_lloyd_max
from quant_envs.compander.quantizer import distortion
from quant_envs.compander.sources import Source

__all__ = ["CompanderReference", "LloydMaxReference", "lloyd_max_reference", "optimal_compander_reference"]


class CompanderReference(NamedTuple):
    """The optimal compander of an N-level quantizer: its support and its SQNR."""

    x_max: float
    sqnr_db: float


class LloydMaxReference(NamedTuple):
    """The Lloyd-Max quantizer: N - 1 thresholds, N levels and its mean squared error."""

    thresholds: np.ndarray
    levels: np.ndarray
    distortion: float


@lru_cache(maxsize=64)
def optimal_compander_reference(src: Source, levels: int) -> CompanderReference:
    """The optimal compander with optimised support, for ``levels`` output levels of ``src``."""
    search = optimal_support(src, lambda x: OptimalCompressor(source=src, x_max=x), levels)
    return CompanderReference(float(search.x_max), float(search.distortion.sqnr_db))


@lru_cache(maxsize=64)
def lloyd_max_reference(src: Source, levels: int) -> LloydMaxReference:
    """The Lloyd-Max quantizer of ``src`` with ``levels`` output levels."""
    sol = solve_lloyd_max(src, levels)
    return LloydMaxReference(sol.thresholds, sol.levels, float(distortion(src, sol.thresholds, sol.levels).total))
