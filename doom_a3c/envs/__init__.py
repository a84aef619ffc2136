"""Environments: the ViZDoom scenario table and wrapper, gymnasium games, and the factory for both."""

from doom_a3c.envs.doom import DisplayError, DoomEnv, EngineError, WindowClosed, has_display, preprocess_frame
from doom_a3c.envs.factory import EnvSpec, env_table, load_env_spec, make_env, spec_of_checkpoint
from doom_a3c.envs.gym_envs import GymEnv, GymSpec
from doom_a3c.envs.scenarios import (ScenarioError, ScenarioSpec, known_scenarios, load_scenario,
                                     scenario_table)

__all__ = ["DisplayError", "DoomEnv", "EngineError", "WindowClosed", "has_display", "preprocess_frame", "make_env", "load_env_spec", "env_table",
           "spec_of_checkpoint",
           "EnvSpec", "GymEnv", "GymSpec", "ScenarioError", "ScenarioSpec", "known_scenarios", "load_scenario",
           "scenario_table"]
