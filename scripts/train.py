#!/usr/bin/env python
"""Train an actor-critic agent on any supported game: python scripts/train.py --env CartPole-v1

ViZDoom scenarios (basic, ...), Atari (ALE/Pong-v5), classic control and Box2D (CartPole-v1,
LunarLander-v3, Pendulum-v1); --list-envs shows the ones with tuned defaults.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from doom_a3c.cli import train_any_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(train_any_main())
