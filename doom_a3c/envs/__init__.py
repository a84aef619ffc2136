"""Environments: the scenario table and the ViZDoom gymnasium wrapper."""

from doom_a3c.envs.doom import DisplayError, DoomEnv, has_display, preprocess_frame
from doom_a3c.envs.factory import make_env
from doom_a3c.envs.scenarios import (ScenarioError, ScenarioSpec, known_scenarios, load_scenario,
                                     scenario_table)

__all__ = ["DisplayError", "DoomEnv", "has_display", "preprocess_frame", "make_env", "ScenarioError",
           "ScenarioSpec", "known_scenarios", "load_scenario", "scenario_table"]
