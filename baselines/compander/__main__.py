"""``python -m baselines.compander``: the comparison table, its CSVs and the SQNR-versus-variance figure."""

import sys

from baselines.compander.cli import main

if __name__ == "__main__":
    sys.exit(main())
