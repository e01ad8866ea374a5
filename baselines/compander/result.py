"""``QuantizerResult``: one designed N-level quantizer in the shared :class:`SolveResult` vocabulary.

Core fields (scipy.optimize names) and the older names kept as aliases::

    x        thresholds    the N-1 finite decision thresholds, ascending (unit-variance source)
    fun      distortion    exact mean squared error (minimised)
    nit      iterations    the solver's outer iterations
    nfev     evaluations   exact-distortion (or Lloyd-map) evaluations
    success  converged     the method met its own stopping rule

Extras: ``source``, ``n_levels``, ``levels`` (the N output levels), ``granular_distortion`` and
``overload_distortion`` (the split of ``fun`` at ``support``), ``sqnr_db``, ``entropy_bits``,
``support`` (x_max; ``None`` without a support region, as for Lloyd-Max) and ``params`` (what is
specific to the method).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from baselines.result import SolveResult
from quant_envs.compander.quantizer import Distortion, output_entropy, sqnr_db, sqnr_vs_variance
from quant_envs.compander.sources import Source

__all__ = ["QuantizerResult", "make_result"]

# The keys of to_dict(), in the order the frozen dataclass this type replaces wrote them.
_DICT_KEYS = (
    "method",
    "source",
    "n_levels",
    "thresholds",
    "levels",
    "distortion",
    "granular_distortion",
    "overload_distortion",
    "sqnr_db",
    "entropy_bits",
    "support",
    "iterations",
    "evaluations",
    "converged",
    "wall_time_s",
    "params",
)


class QuantizerResult(SolveResult):
    """One designed N-level quantizer and how it was found (see the module docstring for fields)."""

    aliases: ClassVar[Mapping[str, str]] = {
        "thresholds": "x",
        "distortion": "fun",
        "iterations": "nit",
        "evaluations": "nfev",
        "converged": "success",
    }
    objective: ClassVar[str] = "distortion (mean squared error of the unit-variance source), minimised"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setdefault("params", {})  # the dataclass's default

    def sqnr_vs_variance(self, variance_db: np.ndarray | Sequence[float]) -> np.ndarray:
        """SQNR in dB of this (unit-variance) design when the input variance is 10^(v/10)."""
        return sqnr_vs_variance(self.source, self.thresholds, self.levels, variance_db)

    def to_dict(self) -> dict[str, Any]:
        """The fields under their older names (as before the shared result type), arrays as lists."""
        d = {key: copy.deepcopy(getattr(self, key)) for key in _DICT_KEYS}
        d["thresholds"] = np.asarray(self.thresholds).tolist()
        d["levels"] = np.asarray(self.levels).tolist()
        return d


def make_result(
    method: str,
    src: Source,
    n: int,
    thresholds: np.ndarray,
    levels: np.ndarray,
    dist: Distortion,
    support: float | None,
    *,
    iterations: int,
    evaluations: int,
    started: float,
    params: dict[str, Any],
    message: str,
    status: int = 0,
) -> QuantizerResult:
    """The result of a design: its exact distortion split, SQNR and entropy, and the run's record."""
    return QuantizerResult(
        x=np.asarray(thresholds, dtype=float),
        fun=dist.total,
        success=status == 0,
        status=status,
        message=message,
        nit=iterations,
        nfev=evaluations,
        method=method,
        source=type(src).name,
        n_levels=n,
        levels=np.asarray(levels, dtype=float),
        granular_distortion=dist.granular,
        overload_distortion=dist.overload,
        sqnr_db=sqnr_db(dist.total),
        entropy_bits=output_entropy(src, thresholds),
        support=support,
        params=params,
        wall_time_s=time.perf_counter() - started,
    )
