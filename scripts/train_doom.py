#!/usr/bin/env python
"""Train an A3C agent on a ViZDoom scenario: python scripts/train_doom.py --scenario basic"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from doom_a3c.cli import train_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(train_main())
