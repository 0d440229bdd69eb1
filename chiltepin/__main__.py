"""``python -m chiltepin``: the ``chiltepin`` command."""

import sys

from chiltepin.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
