#!/usr/bin/env python
"""Watch a trained agent play: python scripts/play.py --render (or --gif out.gif where there is no display)"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from doom_a3c.cli import play_main  # noqa: E402

if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `play.py | head` ends quietly, as other tools do
    sys.exit(play_main())
