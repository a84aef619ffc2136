"""A gymnasium.Env around vizdoom.DoomGame: crop, resize, grayscale, frame skip, reward scaling."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import vizdoom

from doom_a3c.envs.engine import ENGINE_TIMEOUT, CallTimer, kill_engine, owned_engine_path, start_engine
from doom_a3c.envs.scenarios import ScenarioSpec

# What ViZDoom raises when its engine process crashed, was killed, or stopped answering.
ENGINE_FAILURES = (vizdoom.ViZDoomErrorException, vizdoom.ViZDoomUnexpectedExitException,
                   vizdoom.ViZDoomIsNotRunningException, vizdoom.MessageQueueException,
                   vizdoom.SharedMemoryException)


class EngineError(RuntimeError):
    """A game's engine crashed, was killed, or did not answer within its time limit: the game is lost,
    and a fresh one has to be started in its place."""


class DisplayError(RuntimeError):
    """A visible game window was asked for where there is no display."""


def has_display() -> bool:
    """Whether a window can be opened (an X11 or Wayland display on Linux; always true elsewhere)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


_INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}


def preprocess_frame(frame: np.ndarray, spec: ScenarioSpec) -> np.ndarray:
    """Full-colour HxWx3 frame -> cropped, resized (the scenario's interpolation), channels-first uint8."""
    top, bottom, left, right = spec.crop
    height, width = frame.shape[:2]
    cropped = frame[top : height - bottom, left : width - right]
    if spec.grayscale:
        cropped = cv2.cvtColor(cropped, cv2.COLOR_RGB2GRAY)
    # cv2 takes (width, height); INTER_AREA averages pixels, which avoids aliasing when shrinking.
    resized = cv2.resize(cropped, (spec.size[1], spec.size[0]), interpolation=_INTERPOLATION[spec.resize])
    if spec.grayscale:
        return resized[np.newaxis]
    return np.ascontiguousarray(resized.transpose(2, 0, 1))


WINDOW_RESOLUTION = "RES_640X480"  # the game window --render shows (the agent's own game stays hidden)


def configure_game(spec: ScenarioSpec, seed: int | None = None, visible: bool = False,
                   resolution: str | None = None) -> vizdoom.DoomGame:
    """A ViZDoom game configured for ``spec``, not started yet: the one place its engine settings are made.
    Always the synchronous player mode: a game advances exactly the tics it is told to, so two games with
    one seed and one sequence of actions play the same episode (the window's twin relies on it)."""
    game = vizdoom.DoomGame()
    game.load_config(spec.config)
    game.set_available_buttons([getattr(vizdoom.Button, b) for b in spec.buttons])
    game.set_screen_resolution(getattr(vizdoom.ScreenResolution, resolution or spec.resolution))
    # Colour is kept for GIFs and for the window; grayscale conversion happens in preprocess_frame.
    game.set_screen_format(vizdoom.ScreenFormat.RGB24)
    game.set_window_visible(visible)
    game.set_mode(vizdoom.Mode.PLAYER)
    if spec.timeout:
        game.set_episode_timeout(spec.timeout)
    if spec.doom_skill:  # before init: set on a running game, ViZDoom 1.2 played every later episode at skill 1
        game.set_doom_skill(spec.doom_skill)
    if seed is not None:
        game.set_seed(int(seed) % (2**31))
    launcher = owned_engine_path()
    if launcher is not None:  # the engine dies with this process (see engine.py)
        game.set_vizdoom_path(launcher)
    return game


def build_game(spec: ScenarioSpec, seed: int | None = None, visible: bool = False,
               resolution: str | None = None) -> vizdoom.DoomGame:
    """A started ViZDoom game configured for ``spec``."""
    game = configure_game(spec, seed, visible, resolution)
    start_engine(game)
    return game


class WindowClosed(RuntimeError):
    """The game window's twin ended (the window was closed, its engine died or hung): the agent's own game
    is fine, but there is nothing left to watch."""


@contextlib.contextmanager
def _real_video_driver(visible: bool):
    """Start a visible game without SDL_VIDEODRIVER=dummy in the environment its engine inherits.

    gymnasium's off-screen renderer needs that setting (gym_envs.py sets it once a game renders to
    frames), and it stays in the process's environment; a ViZDoom window started after it got SDL's
    dummy driver and the engine crashed (a segfault, then its crash dialog waiting for a click)."""
    driver = os.environ.get("SDL_VIDEODRIVER")
    if not visible or driver != "dummy":
        yield
        return
    del os.environ["SDL_VIDEODRIVER"]
    try:
        yield
    finally:
        os.environ["SDL_VIDEODRIVER"] = driver


class GameWindow:
    """What ``render_mode="human"`` shows: a twin of the agent's game at a watchable size.

    The agent keeps playing its own hidden game at the training resolution, so it sees exactly the
    pixels it was trained on (a larger game shrunk to that size would not give the same ones). The twin
    gets the same seed, the same episodes and the same actions, one tic at a time at Doom's real 35 tics
    a second, so it plays the same game, drawn at ``resolution`` in a window. ViZDoom's own suggestion
    for this (ViZDoom issue #203); tests/test_env.py checks the two games stay in step. Its engine is
    guarded like the agent's (killed when a call hangs, killed before closing); any failure of the twin
    raises WindowClosed.
    """

    def __init__(self, spec: ScenarioSpec, seed: int | None, resolution: str = WINDOW_RESOLUTION,
                 visible: bool = True, realtime: bool = True, engine_timeout: float = ENGINE_TIMEOUT):
        self.game = configure_game(spec, seed, visible=visible, resolution=resolution)
        self._timer = CallTimer(engine_timeout)
        with _real_video_driver(visible):
            self._timer.pid = start_engine(self.game)
        self.realtime = realtime
        self._next_tic = 0.0

    def _call(self, method: str, *args):
        self._timer.start()
        try:
            return getattr(self.game, method)(*args)
        except ENGINE_FAILURES as err:
            self.close(engine_alive=False)
            raise WindowClosed(f"the game window closed ({type(err).__name__})") from err
        finally:
            self._timer.stop()

    def new_episode(self, seed: int | None) -> None:
        if seed is not None:
            self.game.set_seed(int(seed) % (2**31))
        self._call("new_episode")
        self._next_tic = time.monotonic()

    def act(self, buttons: list[float], tics: int) -> None:
        """The agent's ``make_action(buttons, tics)``, played one tic at a time, each shown."""
        for _ in range(tics):
            if self._call("is_episode_finished"):
                return
            if self.realtime:
                self._next_tic = max(self._next_tic + 1 / 35, time.monotonic() - 0.1)
                time.sleep(max(0.0, self._next_tic - time.monotonic()))
            self._call("make_action", buttons, 1)

    def screen(self) -> np.ndarray | None:
        """The twin's current frame (HxWx3), None once its episode has ended."""
        state = self.game.get_state()
        return None if state is None else state.screen_buffer

    def close(self, engine_alive: bool = True) -> None:
        """Kill the engine first, then close (see DoomEnv.close)."""
        if self.game is None:
            return
        if engine_alive and not self._timer.expired:
            kill_engine(self._timer.pid)
        try:
            self.game.close()
        except ENGINE_FAILURES:
            pass
        self.game = None


class DoomEnv(gym.Env):
    """One ViZDoom game as a gymnasium environment.

    ``terminated`` means the episode really ended (death, kill, goal); ``truncated`` means the
    scenario's timeout cut it short, so a learner should bootstrap from the value there. Rewards are
    the engine's plus the scenario's shaping terms (if it declares any), times its ``reward_scale``; the
    engine's raw reward is in ``info["raw_reward"]`` (the shaped one in ``info["shaped_reward"]``) and, at
    the end of an episode, ``info["episode"] = {"r": raw return, "l": steps}`` (with ``"shaped"``: the
    shaped return, where the scenario shapes).
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 35}

    def __init__(self, spec: ScenarioSpec, render_mode: str | None = None, seed: int | None = None,
                 engine_timeout: float = ENGINE_TIMEOUT, window_visible: bool = True):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None")
        if render_mode == "human" and window_visible and not has_display():
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
        # Per action, the buttons held after the first tic: the action without its tapped buttons, or None
        # where it taps nothing (then the whole step is one make_action call).
        tapped = {i for i, b in enumerate(spec.buttons) if b in spec.tap}
        self._after_tap = []
        for a in self._actions:
            rest = [0.0 if i in tapped else x for i, x in enumerate(a)]
            self._after_tap.append(rest if rest != a and spec.frame_skip > 1 else None)
        # Reward shaping (scenario data): weights per unit increase / decrease of each game variable.
        self._shaping = [(getattr(vizdoom.GameVariable, name), up, down) for name, (up, down) in spec.shaping.items()]
        self._variables = [0.0] * len(self._shaping)
        self._shaped_return = 0.0

        self.game = configure_game(spec, seed=seed)
        self._timer = CallTimer(engine_timeout)
        self._failed = False
        self.window: GameWindow | None = None
        self._timer.pid = start_engine(self.game)
        if render_mode == "human":
            try:
                self.window = GameWindow(spec, seed, visible=window_visible, realtime=window_visible,
                                         engine_timeout=engine_timeout)
            except Exception as err:  # vizdoom raises its own exception types
                self.close()
                raise DisplayError(f"could not open the game window ({err})") from err
        self._obs = np.zeros(spec.obs_shape, dtype=np.uint8)
        self._frame = np.zeros((1, 1, 3), dtype=np.uint8)
        self._steps = 0

    def _observe(self) -> np.ndarray:
        state = self.game.get_state()
        if state is None:  # the episode has finished: the last frame again, as an array of its own (a caller
            return self._obs.copy()  # may keep each observation, as gymnasium's contract allows)
        self._frame = state.screen_buffer
        self._obs = preprocess_frame(self._frame, self.scenario)
        return self._obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a new episode; a seed makes it (and the ones after it) reproducible."""
        super().reset(seed=seed)
        timer = self._timer
        timer.start()
        try:
            if seed is not None:
                self.game.set_seed(int(seed) % (2**31))
            self.game.new_episode()
            if self.window is not None:
                try:
                    self.window.new_episode(seed)
                except WindowClosed:
                    self.window = None
                    raise
            obs = self._observe()
            self._variables = [self.game.get_game_variable(v) for v, _, _ in self._shaping]
        except ENGINE_FAILURES as err:
            raise self._engine_error(err) from err
        finally:
            timer.stop()
        self._steps = 0
        self._shaped_return = 0.0
        return obs, {}

    def step(self, action: int):
        """Repeat ``action`` for ``frame_skip`` tics (its tapped buttons for the first only); reward is summed
        over them, then scaled."""
        game, timer = self.game, self._timer
        timer.start()
        try:
            buttons, rest = self._actions[int(action)], self._after_tap[int(action)]
            if rest is None:
                raw = game.make_action(buttons, self.frame_skip)
            else:  # tap: pressed for one tic, released for the others
                raw = game.make_action(buttons, 1)
                if not game.is_episode_finished():
                    raw += game.make_action(rest, self.frame_skip - 1)
            if self.window is not None:
                self._show(buttons, rest)
            finished = game.is_episode_finished()
            truncated = finished and game.is_episode_timeout_reached()
            obs = self._observe()
            total = game.get_total_reward() if finished else 0.0
            shaped = raw + self._shaping_bonus() if self._shaping else raw
        except ENGINE_FAILURES as err:
            raise self._engine_error(err) from err
        finally:
            timer.stop()
        self._steps += 1
        terminated = finished and not truncated
        info: dict[str, Any] = {"raw_reward": raw}
        if self._shaping:
            self._shaped_return += shaped
            info["shaped_reward"] = shaped
        if finished:
            info["episode"] = {"r": total, "l": self._steps}
            if self._shaping:
                info["episode"]["shaped"] = self._shaped_return
        return obs, shaped * self.reward_scale, terminated, truncated, info

    def _show(self, buttons: list[float], rest: list[float] | None) -> None:
        """The step just taken, in the window's twin; a twin that fails is dropped (WindowClosed)."""
        try:
            self.window.act(buttons, self.frame_skip if rest is None else 1)
            if rest is not None:
                self.window.act(rest, self.frame_skip - 1)
        except WindowClosed:
            self.window = None
            raise

    def _shaping_bonus(self) -> float:
        """The shaping terms for the step just taken, from the change of each declared game variable
        (read from the engine, so they are right on the last step of an episode too)."""
        bonus = 0.0
        for k, (variable, up, down) in enumerate(self._shaping):
            value = self.game.get_game_variable(variable)
            change = value - self._variables[k]
            self._variables[k] = value
            bonus += change * (up if change > 0 else down)
        return bonus

    def _engine_error(self, err: Exception) -> EngineError:
        self._failed = True
        if self._timer.expired:
            return EngineError(f"engine did not answer within {self._timer.timeout:g} s and was killed")
        return EngineError(f"engine failed ({type(err).__name__}: {str(err).strip() or 'no message'})")

    @property
    def engine_pid(self) -> int | None:
        """The pid of this game's engine process, where it could be told (Linux)."""
        return self._timer.pid

    def render(self):
        """``rgb_array``: the last full-resolution colour frame. ``human``: the game draws its own window."""
        if self.render_mode == "rgb_array":
            return self._frame.copy()
        return None

    def last_frame(self) -> np.ndarray:
        """The last full-resolution colour frame (HxWx3 uint8), whatever the render mode; for GIFs."""
        return self._frame

    def close(self):
        """Shut the engine down. The engine is killed first: ViZDoom's own close waits for an answer while
        holding the GIL, so a wedged engine would hang this process for good (a killed one closes cleanly,
        its shared memory and message queues removed)."""
        if getattr(self, "window", None) is not None:
            self.window.close()
            self.window = None
        if getattr(self, "game", None) is None:
            return
        if not self._failed:  # alive and still our unreaped child, so the pid is its own
            kill_engine(self._timer.pid)
        try:
            self.game.close()
        except ENGINE_FAILURES:
            pass  # it was gone already
        finally:
            self.game = None
            self._timer.pid = None
