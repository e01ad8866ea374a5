"""Tabular mixed-precision benchmarks: a policy's score read from a table instead of a retraining.

Modules, each depending only on those above it (the import contract in ``pyproject.toml``):

* :mod:`.surrogate`: surrogate tables (a fitted model's scores where the grid is too large to
  retrain; :class:`~.surrogate.SurrogateTable`), :mod:`.surrogate_optimum`: their exact optimum;
* :mod:`.policy_table`: the data type (:class:`~.policy_table.PolicyTable`, :class:`~.policy_table.TableLayer`);
* :mod:`.costs`: a table's costs from ``hw_sim``; :mod:`.npz`: the generic on-disk format;
  :mod:`.hawq`: HAWQ-V3's published ResNet-18/50 tables; :mod:`.training_data`: the live training
  set shipped beside a surrogate table;
* :mod:`.fidelity`: a table's fidelities (retraining steps) and their evaluation cost;
* :mod:`.registry`: table names -> loaders (:func:`~.registry.load_table`, :func:`~.registry.register_table`);
* :mod:`.reference`: a table's exact optimum; :mod:`.problem`: a table as a problem;
  :mod:`.env`: ``quant_envs/MixedPrecisionTable-v0``; :mod:`.regret`: regret curves;
* :mod:`.numerics`: what decides whether a retraining repeats bit for bit;
* :mod:`.chunks`: generators' resumable work directories, each chunk labelled with its numerics;
* :mod:`.build`: the generator of exhaustive tables (``python -m quant_envs.mixed_precision.tables.build``);
* :mod:`.scenarios`: every scenario's instance grid, and whether each instance separates methods
  (``python -m quant_envs.mixed_precision.tables.scenarios``);
* :mod:`.sample`: live training sets for surrogates (``python -m quant_envs.mixed_precision.tables.sample``);
  :mod:`.surrogate_build`: a surrogate scenario made from one (fit, package, solve every
  instance's optimum: ``python -m quant_envs.mixed_precision.tables.surrogate_build``);
  :mod:`.live`: a table's live problem and re-checks of its entries
  (``python -m quant_envs.mixed_precision.tables.live``);
* :mod:`.surrogate_live`: a surrogate's optima retrained live (``benchmarks/bench_surrogate.py``).

Only :data:`DATA_DIR` is defined here: importing one module does not import the others.
"""

from pathlib import Path

#: The shipped tables (``.npz``) and HAWQ-V3's published numbers (``.json``), with their provenance.
DATA_DIR = Path(__file__).resolve().parent.parent / "table_data"
