"""``python -m baselines.mixed_precision``: see :mod:`baselines.mixed_precision.cli`."""

from baselines.mixed_precision.cli import main

raise SystemExit(main())
