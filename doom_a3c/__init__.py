"""doom_a3c: A3C (asynchronous advantage actor-critic) for ViZDoom, Atari and gymnasium games from raw pixels.

    import doom_a3c
    doom_a3c.train("basic", max_frames=300_000)        # the scenario's preset, then any option as a keyword
    agent = doom_a3c.Agent.load("basic")              # your trained model, else the shipped one
    agent.play(episodes=5)                            # {"mean": ..., "rewards": [...], ...}

Importing it registers each scenario file with gymnasium as ``doom_a3c/<name>-v0``. The command line is
``doom-a3c`` (``doom-a3c --help``); see doom_a3c/api.py for the API.
"""

import sys

if sys.version_info < (3, 11):  # tomllib, and numpy 2.4's wheels: one clear line instead of an ImportError
    sys.stderr.write(f"doom_a3c needs Python 3.11 or newer; this is Python {sys.version.split()[0]}\n")
    raise SystemExit(2)

__version__ = "0.1.0"

_API = ("Agent", "TrainConfig", "TrainResult", "settings", "train")


def __getattr__(name: str):
    """The API's names, imported on first use: ``import doom_a3c`` itself does not load torch."""
    if name in _API:
        from doom_a3c import api

        return getattr(api, name)
    raise AttributeError(f"module 'doom_a3c' has no attribute '{name}'")


def _register_envs() -> None:
    """Each Doom scenario file as the gymnasium id ``doom_a3c/<name>-v0`` (made by ``api.make_scenario_env``;
    the other games have their own ids already)."""
    import gymnasium

    from doom_a3c.resources import SCENARIOS_DIR

    for path in sorted(SCENARIOS_DIR.glob("*.toml")):
        env_id = f"doom_a3c/{path.stem}-v0"
        if env_id in gymnasium.registry:
            continue
        try:
            gymnasium.register(env_id, entry_point="doom_a3c.api:make_scenario_env", kwargs={"scenario": path.stem})
        except gymnasium.error.Error:  # a file name gymnasium cannot take as an id ("my level.toml"): not one
            continue


_register_envs()

__all__ = ["__version__", *_API]
