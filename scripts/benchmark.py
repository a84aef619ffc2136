#!/usr/bin/env python
"""Measure training speed against the game's own speed, in one run on the same cores.

    python scripts/benchmark.py --scenario basic            # a table
    python scripts/benchmark.py --scenario basic --json     # the same figures, machine-readable
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from doom_a3c.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
