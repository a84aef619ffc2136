#!/usr/bin/env python
"""Make the shipped models (models/pretrained/) from trained best.pt files:
    python scripts/ship_models.py basic take_cover --models-dir runs/results/models
(the same as `doom-a3c ship`; --help says more)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from doom_a3c.pretrained import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
