"""``python -m graphbatch``: the same command line as the ``graphbatch`` console script."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
