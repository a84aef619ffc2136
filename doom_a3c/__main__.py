"""``python -m doom_a3c COMMAND``: the same as the ``doom-a3c`` command."""

import sys

from doom_a3c.cli import main

if __name__ == "__main__":
    sys.exit(main())
