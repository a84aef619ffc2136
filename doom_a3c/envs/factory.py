"""``make_env``: the one place that turns a scenario into an environment.

This is the seam for other games: an Atari or classic-control factory returns a gymnasium.Env with
the same contract (uint8 channels-first observations, Discrete actions, ``info["episode"]``).
"""

from __future__ import annotations

from doom_a3c.envs.doom import DoomEnv
from doom_a3c.envs.scenarios import ScenarioSpec


def make_env(spec: ScenarioSpec, seed: int | None = None, render_mode: str | None = None) -> DoomEnv:
    """Build the environment for ``spec``, seeded so that worker ``i`` can use ``seed + i``."""
    return DoomEnv(spec, render_mode=render_mode, seed=seed)
