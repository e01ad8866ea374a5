"""Companding scalar quantizers: the problem model and its environments.

Model (imported by the environments here and by the solvers in ``baselines.compander``):

* :mod:`.sources` -- unit-variance Gaussian and Laplacian sources with closed-form tail moments
  and cube-root integrals, and a registry for more;
* :mod:`.quantizer` -- exact distortion (granular + overload), SQNR, output entropy and the
  SQNR-versus-input-variance curve of any quantizer given by thresholds and levels;
* :mod:`.lloyd` -- the Lloyd-Max optimality conditions and their fixed point;
* :mod:`.compressor` -- optimal, mu-law and A-law compressors, the compander they define, its
  optimised loading, and the Panter-Dite asymptote;
* :mod:`.spline` -- first- and second-degree spline approximations of the optimal compressor
  (Velimirovic, Peric, Stankovic & Nikolic 2012).

Environments (:mod:`.env`): ``quant_envs/SplineCompander-v0`` and ``quant_envs/ScalarQuantizer-v0``.
"""

from quant_envs.compander.quantizer import (
    Distortion,
    distortion,
    output_entropy,
    sqnr_db,
    sqnr_vs_variance,
)
from quant_envs.compander.sources import Source, available_sources, get_source, register_source

__all__ = [
    "Distortion",
    "Source",
    "available_sources",
    "distortion",
    "get_source",
    "output_entropy",
    "register_source",
    "sqnr_db",
    "sqnr_vs_variance",
]
