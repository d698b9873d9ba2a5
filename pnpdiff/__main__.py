"""``python -m pnpdiff RECIPE.yaml``."""

import sys

from pnpdiff.cli import main

if __name__ == "__main__":
    sys.exit(main())
