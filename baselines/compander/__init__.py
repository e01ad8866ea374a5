"""Non-RL solvers for companding scalar quantizers, and the comparison table and figure.

>>> from baselines.compander import METHODS, solve
>>> res = solve("gaussian", "lloyd_max", 8)
>>> round(res.sqnr_db, 2), res.success
(14.62, True)

``solve(source, method, levels, **options)`` runs one of ``METHODS`` (``source`` is
``"gaussian"``, ``"laplacian"``, another registered name, or a
:class:`~quant_envs.compander.sources.Source`) and returns a :class:`QuantizerResult`:

* ``"lloyd_max"`` (:func:`lloyd_max`) -- the optimal N-level quantizer (Lloyd 1957/1982, Max
  1960): Lloyd iteration on the centroid and midpoint conditions with closed-form cell moments,
  finished by Newton's method on the same fixed point, to a fixed-point residual of 1e-12;
* ``"optimal_compander"`` (:func:`optimal_compander`) -- the compander with compressor
  c(x) ~ integral f^(1/3) and its support region x_max chosen for the highest exact SQNR;
* ``"spline_compander"`` (:func:`spline_compander`) -- the compander of Velimirovic, Peric,
  Stankovic & Nikolic (2012): the optimal compressor approximated by first- or second-degree
  splines on segments, with the segment threshold(s) searched numerically for the highest exact SQNR;
* ``"mu_law"``, ``"a_law"`` (:func:`mu_law`, :func:`a_law`) -- G.711 companders (mu = 255,
  A = 87.6) with optimised loading;

and :func:`panter_dite_sqnr_db` is the high-resolution asymptote 10 log10(12 N^2 / (int f^(1/3))^3).

Every formula (distortion, compressors, spline fit, Lloyd map) comes from
:mod:`quant_envs.compander`; this package only searches and reports. Modules: :mod:`.solvers`
(the solvers, their registry and ``solve``), :mod:`.spline` (the spline compander's search),
:mod:`.result` (``QuantizerResult``), :mod:`.table` (table, CSV rows, figure), :mod:`.cli`.

Command line (prints the table, writes a CSV per source and the SQNR-versus-variance figure)::

    python -m baselines.compander --source laplacian --levels 8 16 32 64 128
    python -m baselines.compander --source both --out results/compander
"""

from __future__ import annotations

from baselines.compander.cli import (
    MAX_CLI_LEVELS,
    MAX_CLI_SEGMENTS,
    main,
    writable_directory_problem,
)
from baselines.compander.result import QuantizerResult
from baselines.compander.solvers import (
    METHODS,
    SOLVERS,
    a_law,
    lloyd_max,
    mu_law,
    optimal_compander,
    panter_dite_sqnr_db,
    solve,
    spline_compander,
)
from baselines.compander.table import COLUMNS, comparison_table, format_table, plot_dynamic_range

__all__ = [
    "COLUMNS",
    "MAX_CLI_LEVELS",
    "MAX_CLI_SEGMENTS",
    "METHODS",
    "SOLVERS",
    "QuantizerResult",
    "a_law",
    "comparison_table",
    "format_table",
    "lloyd_max",
    "main",
    "mu_law",
    "optimal_compander",
    "panter_dite_sqnr_db",
    "plot_dynamic_range",
    "solve",
    "spline_compander",
    "writable_directory_problem",
]
