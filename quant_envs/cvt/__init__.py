"""Centroidal Voronoi tessellations (CVT) in 1-D and 2-D: the model shared by env and solvers.

>>> import numpy as np
>>> from quant_envs.cvt import CVTProblem
>>> p = CVTProblem(8, density="uniform", domain=(0.0, 1.0))
>>> z = (2 * np.arange(1, 9) - 1) / 16          # the exact uniform CVT
>>> round(p.energy(z) * 12 * 8**2, 12)           # E = 1 / (12 k^2)
1.0
"""

from __future__ import annotations

from quant_envs.cvt.density import DENSITY_NAMES, Density
from quant_envs.cvt.domain import ConvexPolygon, Interval
from quant_envs.cvt.problem import CVTEvaluation, CVTProblem

__all__ = ["CVTEvaluation", "CVTProblem", "ConvexPolygon", "DENSITY_NAMES", "Density", "Interval"]
