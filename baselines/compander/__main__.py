import sys

from baselines.compander.solvers import main

if __name__ == "__main__":
    sys.exit(main())
