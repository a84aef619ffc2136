"""A gymnasium.Env around vizdoom.DoomGame: crop, resize, grayscale, frame skip, reward scaling."""

from __future__ import annotations

import os
import sys
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import vizdoom

from doom_a3c.envs.scenarios import ScenarioSpec


class DisplayError(RuntimeError):
    """A visible game window was asked for where there is no display."""


def has_display() -> bool:
    """Whether a window can be opened (an X11 or Wayland display on Linux; always true elsewhere)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def preprocess_frame(frame: np.ndarray, spec: ScenarioSpec) -> np.ndarray:
    """Full-colour HxWx3 frame -> cropped, resized (INTER_AREA), channels-first uint8 observation."""
    top, bottom, left, right = spec.crop
    height, width = frame.shape[:2]
    cropped = frame[top : height - bottom, left : width - right]
    if spec.grayscale:
        cropped = cv2.cvtColor(cropped, cv2.COLOR_RGB2GRAY)
    # cv2 takes (width, height); INTER_AREA averages pixels, which avoids aliasing when shrinking.
    resized = cv2.resize(cropped, (spec.size[1], spec.size[0]), interpolation=cv2.INTER_AREA)
    if spec.grayscale:
        return resized[np.newaxis]
    return np.ascontiguousarray(resized.transpose(2, 0, 1))


def build_game(spec: ScenarioSpec, seed: int | None = None, visible: bool = False) -> vizdoom.DoomGame:
    """A started ViZDoom game configured for ``spec``: the one place its engine settings are made."""
    game = vizdoom.DoomGame()
    game.load_config(spec.config)
    game.set_available_buttons([getattr(vizdoom.Button, b) for b in spec.buttons])
    game.set_screen_resolution(getattr(vizdoom.ScreenResolution, spec.resolution))
    # Colour is kept for GIFs and for the window; grayscale conversion happens in preprocess_frame.
    game.set_screen_format(vizdoom.ScreenFormat.RGB24)
    game.set_window_visible(visible)
    # In the window, the game runs at its real 35 tics/s; headless, as fast as it can.
    game.set_mode(vizdoom.Mode.ASYNC_PLAYER if visible else vizdoom.Mode.PLAYER)
    if spec.timeout:
        game.set_episode_timeout(spec.timeout)
    if seed is not None:
        game.set_seed(int(seed) % (2**31))
    game.init()
    return game


class DoomEnv(gym.Env):
    """One ViZDoom game as a gymnasium environment.

    ``terminated`` means the episode really ended (death, kill, goal); ``truncated`` means the
    scenario's timeout cut it short, so a learner should bootstrap from the value there. Rewards are
    multiplied by the scenario's ``reward_scale``; the engine's raw reward is in ``info["raw_reward"]``
    and, at the end of an episode, ``info["episode"] = {"r": raw return, "l": steps}``.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 35}

    def __init__(self, spec: ScenarioSpec, render_mode: str | None = None, seed: int | None = None):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        if render_mode == "human" and not has_display():
            raise DisplayError("no display to show the game window on")
        self.scenario = spec
        self.render_mode = render_mode
        self.frame_skip = spec.frame_skip
        self.steps_per_second = 35.0 / spec.frame_skip  # Doom runs at 35 tics a second
        # Steps before the timeout ends an episode (None: only the .cfg's own timeout, unknown here).
        self.max_episode_steps = -(-spec.timeout // spec.frame_skip) if spec.timeout else None
        self.reward_scale = spec.reward_scale
        self.observation_space = gym.spaces.Box(0, 255, spec.obs_shape, dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(spec.num_actions)
        self._actions = [[float(x) for x in a] for a in spec.actions]

        try:
            self.game = build_game(spec, seed=seed, visible=render_mode == "human")
        except Exception as err:  # vizdoom raises its own exception types
            if render_mode == "human":
                raise DisplayError(f"could not open the game window ({err})") from err
            raise
        self._obs = np.zeros(spec.obs_shape, dtype=np.uint8)
        self._frame = np.zeros((1, 1, 3), dtype=np.uint8)
        self._steps = 0

    def _observe(self) -> np.ndarray:
        state = self.game.get_state()
        if state is not None:  # None once the episode has finished: keep the last frame
            self._frame = state.screen_buffer
            self._obs = preprocess_frame(self._frame, self.scenario)
        return self._obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a new episode; a seed makes it (and the ones after it) reproducible."""
        super().reset(seed=seed)
        if seed is not None:
            self.game.set_seed(int(seed) % (2**31))
        self.game.new_episode()
        self._steps = 0
        return self._observe(), {}

    def step(self, action: int):
        """Repeat ``action`` for ``frame_skip`` tics; reward is summed over them, then scaled."""
        raw = self.game.make_action(self._actions[int(action)], self.frame_skip)
        self._steps += 1
        finished = self.game.is_episode_finished()
        truncated = finished and self.game.is_episode_timeout_reached()
        terminated = finished and not truncated
        obs = self._observe()
        info: dict[str, Any] = {"raw_reward": raw}
        if finished:
            info["episode"] = {"r": self.game.get_total_reward(), "l": self._steps}
        return obs, raw * self.reward_scale, terminated, truncated, info

    def render(self):
        """``rgb_array``: the last full-resolution colour frame. ``human``: the game draws its own window."""
        if self.render_mode == "rgb_array":
            return self._frame.copy()
        return None

    def last_frame(self) -> np.ndarray:
        """The last full-resolution colour frame (HxWx3 uint8), whatever the render mode; for GIFs."""
        return self._frame

    def close(self):
        """Shut the engine down."""
        if getattr(self, "game", None) is not None:
            self.game.close()
            self.game = None
