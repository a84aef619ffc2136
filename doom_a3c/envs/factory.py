"""``make_env``: the one place that turns an environment spec into an environment, and
``load_env_spec``: the one place that turns a name (a Doom scenario, a gymnasium id, a .toml) into a spec.

Both kinds of environment keep one contract (see ``gym_envs``), so the worker, the evaluation and the
trainer never ask which game they are playing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Union

import gymnasium as gym

from doom_a3c.envs.doom import DoomEnv
from doom_a3c.envs.engine import ENGINE_TIMEOUT
from doom_a3c.envs.gym_envs import GymSpec, find_gym_spec, gym_presets, load_gym_spec_file, make_gym_env
from doom_a3c.envs.scenarios import (SCENARIOS_DIR, ScenarioError, ScenarioSpec, format_table, known_scenarios,
                                     load_scenario)

EnvSpec = Union[ScenarioSpec, GymSpec]


def make_env(spec: EnvSpec, seed: int | None = None, render_mode: str | None = None,
             engine_timeout: float = ENGINE_TIMEOUT, training: bool = False) -> gym.Env:
    """Build the environment for ``spec``, seeded so that worker ``i`` can use ``seed + i``.
    ``engine_timeout``: seconds a ViZDoom engine may take to answer one call before it is killed.
    ``training``: a worker's game (Atari's life loss then ends its episodes; see ``gym_envs.EpisodicLife``)."""
    if isinstance(spec, GymSpec):
        return make_gym_env(spec, seed=seed, render_mode=render_mode, training=training)
    return DoomEnv(spec, render_mode=render_mode, seed=seed, engine_timeout=engine_timeout)


def load_env_spec(name: str) -> EnvSpec:
    """A ViZDoom scenario name, a gymnasium id (``CartPole-v1``, ``ALE/Pong-v5``) or a .toml file's path."""
    path = Path(name)
    if path.suffix == ".toml" and path.is_file():
        try:
            is_gym = "env_id" in tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ScenarioError(f"{path}: cannot read environment file ({err})") from err
        return load_gym_spec_file(path) if is_gym else load_scenario(name)
    if path.suffix == ".toml":
        return load_scenario(name)  # reports the missing file
    if name in known_scenarios():
        return load_scenario(name)
    spec = find_gym_spec(name)
    if spec is not None:
        return spec
    raise ScenarioError(f"unknown environment '{name}'; ViZDoom scenarios: {', '.join(known_scenarios())}; "
                        f"games with tuned defaults: {', '.join(gym_presets())}; "
                        "or any registered gymnasium id (see --list-envs)")


def spec_of_checkpoint(saved: dict) -> EnvSpec:
    """The spec a checkpoint's ``scenario`` record names (a game's id, a shipped scenario, or the scenario
    file it was trained from where that file is still here)."""
    if saved.get("env_id"):
        return load_env_spec(saved["env_id"])
    if saved.get("name") in known_scenarios():
        return load_scenario(saved["name"])
    if saved.get("source") and Path(saved["source"]).is_file():
        return load_scenario(saved["source"])
    raise ScenarioError(f"trained on '{saved.get('name')}', which is not known here; pass --env NAME_OR_PATH")


def env_table(directory: Path = SCENARIOS_DIR) -> str:
    """The environments with shipped defaults, for ``--list-envs``."""
    rows = [("name", "kind", "target", "description")]
    for name in known_scenarios(directory):
        try:
            spec = load_scenario(name, directory)
            rows.append((name, "ViZDoom", f"{spec.target_reward:g}", spec.description))
        except ScenarioError as err:
            rows.append((name, "ViZDoom", "-", f"INVALID: {err}"))
    for env_id, path in gym_presets().items():
        try:
            gspec = load_gym_spec_file(path)
            kind = "Atari" if gspec.atari else "gymnasium"
            rows.append((env_id, kind, f"{gspec.target_reward:g}", gspec.description))
        except ScenarioError as err:
            rows.append((env_id, "gymnasium", "-", f"INVALID: {err}"))
    return format_table(rows) + "\nAny other registered gymnasium id works too, with generic defaults."
