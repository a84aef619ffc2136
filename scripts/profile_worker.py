#!/usr/bin/env python
"""Where one training worker's time goes, section by section (one worker and its games on one core).

    python scripts/profile_worker.py --scenario basic                                       # untrained
    python scripts/profile_worker.py --scenario basic --weights models/pretrained/basic.pt  # a trained agent
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from doom_a3c.profiling import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
