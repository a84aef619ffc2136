#!/usr/bin/env python
"""Train ViZDoom scenarios with their own defaults, one after the other, and publish what they reached:
    python scripts/doom_results.py defend_the_center take_cover
(the same as `doom-a3c results`; --help says more)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from doom_a3c.results import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
