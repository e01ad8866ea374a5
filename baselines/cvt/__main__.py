"""``python -m baselines.cvt study --out results/cvt``: the CVT convergence study."""

from baselines.cvt.study import main

raise SystemExit(main())
