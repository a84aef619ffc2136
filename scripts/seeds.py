#!/usr/bin/env python
"""Train one preset over several seeds and print the frames and minutes each needed to its target:
    python scripts/seeds.py --scenario basic --seeds 5
(the same as `doom-a3c seeds`; --help says more)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from doom_a3c.seeds import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
