"""Gymnasium games beside ViZDoom: Atari (ale-py), classic control, Box2D, continuous control.

Per-environment defaults are data, as the Doom scenarios are: ``scenarios/gym/<name>.toml`` holds an
``env_id`` and the settings that differ from the generic defaults (Atari preprocessing, reward scale,
target, the ``[train]`` table). Any other registered gymnasium id works too, with the generic defaults.

Every environment comes out of ``make_gym_env`` with the contract the worker relies on, the same as
``DoomEnv``'s: observations either uint8 channels-first images or float32 vectors; training rewards
transformed (clipped, scaled) with the raw one in ``info["raw_reward"]``; ``info["episode"] = {"r", "l"}``
(raw return, steps) when an episode ends; ``last_frame()`` for GIFs; ``steps_per_second`` for their speed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from doom_a3c.envs.doom import DisplayError, has_display
from doom_a3c.envs.scenarios import EVAL_MODES, SCENARIOS_DIR, ScenarioError, read_toml

GYM_SPECS_DIR = SCENARIOS_DIR / "gym"
# pygame (gymnasium's renderer) opens an audio device it never uses: no game here has sound.
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@dataclass(frozen=True)
class GymSpec:
    """A gymnasium environment id plus how to wrap it and its training defaults."""

    name: str  # directory-safe form of env_id ("ALE/Pong-v5" -> "ALE-Pong-v5"): runs/, models/, frames/
    env_id: str
    description: str = ""
    atari: bool = False  # gymnasium's AtariPreprocessing: frame skip + max-pool, no-op starts, resize, gray
    frame_skip: int = 1  # emulator frames per agent step (Atari: 4); frames are counted as steps x this
    screen_size: int = 84
    grayscale: bool = True
    noop_max: int = 30
    frame_stack: int = 1  # Atari: the last N frames as channels (gymnasium's FrameStackObservation), grayscale only
    episodic_life: bool = False  # Atari, training only: a lost life ends the learner's episode, the game goes on
    fire_reset: bool = False  # Atari: press FIRE at each start of play (games that wait for it, like Breakout)
    clip_rewards: bool = False  # train on sign(reward) (DQN/A3C Atari); evaluation reports raw rewards
    reward_scale: float = 1.0  # training reward = (clipped) reward x this
    target_reward: float = float("inf")  # evaluation mean (raw reward) at which training stops
    eval_mode: str = "greedy"  # how evaluations pick actions: "greedy" or "sampled"
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    train: dict[str, Any] = field(default_factory=dict)  # overrides of TrainConfig defaults
    source: str = ""  # the file this spec was read from ("" for a bare gymnasium id)

    def stage(self, frames: int) -> int:
        """No curriculum (ScenarioSpec.stage): training plays the game as declared from the start."""
        return 0

    def at_stage(self, stage: int) -> GymSpec:
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for checkpoints and logs."""
        return dataclasses.asdict(self)

    def carried(self) -> GymSpec:
        """A gymnasium game is named by its id, which each machine resolves itself: nothing to carry."""
        return self

    def on_this_machine(self) -> GymSpec:
        return self


def env_name(env_id: str) -> str:
    """A name usable as a directory: ``ALE/Pong-v5`` -> ``ALE-Pong-v5``."""
    return env_id.replace("/", "-")


def register_gym_envs() -> None:
    """Make the Atari ids (``ALE/...``) known to gymnasium; ale-py ships the ROMs."""
    try:
        import ale_py
    except ImportError:  # Atari is optional: classic control and Box2D work without it
        return
    # Without this every game prints ALE's two-line banner to stderr: once per worker's game.
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    gym.register_envs(ale_py)


def is_registered(env_id: str) -> bool:
    """Whether gymnasium knows ``env_id``."""
    register_gym_envs()
    return env_id in gym.envs.registry


_KNOWN_KEYS = {f.name for f in dataclasses.fields(GymSpec)} - {"name", "source"}


def load_gym_spec_file(path: Path) -> GymSpec:
    """Parse and validate one ``scenarios/gym/*.toml`` file."""
    data = read_toml(path, "environment", _KNOWN_KEYS)
    if "env_id" not in data:
        raise ScenarioError(f"{path}: missing required key 'env_id'")
    for table in ("train", "env_kwargs"):
        if not isinstance(data.get(table, {}), dict):
            raise ScenarioError(f"{path}: [{table}] must be a table")
    values = {k: v for k, v in data.items() if k in _KNOWN_KEYS}
    if not isinstance(values.get("frame_skip", 1), int) or values.get("frame_skip", 1) < 1:
        raise ScenarioError(f"{path}: 'frame_skip' must be a positive integer")
    if not isinstance(values.get("frame_stack", 1), int) or values.get("frame_stack", 1) < 1:
        raise ScenarioError(f"{path}: 'frame_stack' must be a positive integer")
    if values.get("frame_stack", 1) > 1 and not values.get("grayscale", True):
        raise ScenarioError(f"{path}: 'frame_stack' stacks grayscale frames as channels: set grayscale = true")
    if values.get("eval_mode", "greedy") not in EVAL_MODES:
        raise ScenarioError(f"{path}: 'eval_mode' must be one of {', '.join(EVAL_MODES)}")
    values["env_id"] = str(values["env_id"])
    values["target_reward"] = float(values.get("target_reward", math.inf))
    values["reward_scale"] = float(values.get("reward_scale", 1.0))
    return GymSpec(name=env_name(values["env_id"]), source=str(path.resolve()), **values)


def gym_presets(directory: Path = GYM_SPECS_DIR) -> dict[str, Path]:
    """Shipped presets: env id -> file."""
    presets = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            presets[str(tomllib.loads(path.read_text())["env_id"])] = path
        except (OSError, tomllib.TOMLDecodeError, KeyError):
            presets[path.stem] = path  # listed, so that loading it reports what is wrong
    return presets


def default_gym_spec(env_id: str) -> GymSpec:
    """Generic defaults for a registered id without a preset: Atari preprocessing for ``ALE/`` ids."""
    atari = env_id.startswith("ALE/")
    return GymSpec(name=env_name(env_id), env_id=env_id, atari=atari, frame_skip=4 if atari else 1,
                   clip_rewards=atari)


def find_gym_spec(name: str, directory: Path = GYM_SPECS_DIR) -> GymSpec | None:
    """The preset for an env id (or its directory-safe name), else defaults for a registered id, else None."""
    for env_id, path in gym_presets(directory).items():
        if name in (env_id, env_name(env_id), path.stem):
            return load_gym_spec_file(path)
    if is_registered(name):
        return default_gym_spec(name)
    return None


class EpisodicLife(gym.Wrapper):
    """Life loss as the end of an episode, for training only (the peers' protocol: baselines' and
    Stable-Baselines3's ``EpisodicLifeEnv``): the learner sees a terminal state where a life is lost, so it
    learns that losing one is bad without waiting for the game's end, but the game itself goes on; the next
    ``reset`` takes a no-op step into the next life, and only a real game over restarts the game. Such a step
    says ``info["life_lost"]``, so that scores stay those of whole games. (gymnasium's own
    ``terminal_on_life_loss`` restarts the whole game at each life lost: the learner would never see a game
    with fewer lives or fewer bricks left.)"""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._ale = env.unwrapped.ale
        self.lives = 0
        self.game_over = True

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self._ale.lives()
        if 0 < lives < self.lives and not self.game_over:
            terminated, info = True, {**info, "life_lost": True}
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)  # into the next life
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self._ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE, then the next action, at each start of play, for games that wait for FIRE (Breakout's ball
    is only served on it): what the peers do (baselines' ``FireResetEnv``). Outside ``EpisodicLife``, so
    that in training each new life (a new episode there) starts served too. In whole games (evaluation,
    play) a life lost mid-game is served the same way within the step that lost it, rewards summed: with
    ``EpisodicLife`` the peers' greedy agents never had to learn to serve, and one that does not would
    otherwise stand still until the game's frame limit."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ScenarioError(f"fire_reset needs FIRE as the game's second action; its actions are {meanings}")
        self._ale = env.unwrapped.ale
        self.lives = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = self._ale.lives()
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self._ale.lives()
        if lives < self.lives and not (terminated or truncated):  # a life lost, the game goes on: serve
            for serve in (1, 2):
                obs, more, terminated, truncated, info = self.env.step(serve)
                reward += more
                if terminated or truncated:
                    break
            lives = self._ale.lives()
        self.lives = lives
        return obs, reward, terminated, truncated, info


class GymEnv(gym.Wrapper):
    """The outermost wrapper: channels-first images, float32 vectors, reward transform, episode stats."""

    def __init__(self, env: gym.Env, spec: GymSpec, frames_env: gym.Env, seed: int | None = None):
        super().__init__(env)
        self.scenario = spec
        self.frame_skip = spec.frame_skip
        self._frames_env = frames_env  # the rgb_array-rendering env underneath, for GIF frames
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box):
            raise ScenarioError(f"{spec.env_id}: observation space {space} is not supported (a Box is needed)")
        self._image = len(space.shape) in (2, 3)
        self._stacked = spec.frame_stack > 1  # FrameStackObservation's (N, H, W) is channels-first already
        if self._stacked:
            self.observation_space = gym.spaces.Box(0, 255, space.shape, dtype=np.uint8)
        elif self._image:
            shape = space.shape if len(space.shape) == 3 else (*space.shape, 1)
            self.observation_space = gym.spaces.Box(0, 255, (shape[2], shape[0], shape[1]), dtype=np.uint8)
        else:
            self.observation_space = gym.spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32),
                                                    dtype=np.float32)
        fps = float(frames_env.metadata.get("render_fps") or 30)
        self.steps_per_second = (60.0 if spec.atari else fps) / spec.frame_skip
        limit = env.spec.max_episode_steps if env.spec is not None else None
        self.max_episode_steps: int | None = limit
        self._seed = seed
        self._return, self._length = 0.0, 0
        self._life_lost = False  # the last step lost a life (training's EpisodicLife): the game goes on

    def _observe(self, obs: np.ndarray) -> np.ndarray:
        if self._stacked:
            return np.asarray(obs)
        if self._image:
            return obs[np.newaxis] if obs.ndim == 2 else np.ascontiguousarray(obs.transpose(2, 0, 1))
        return np.asarray(obs, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode; the first reset uses the seed given at construction."""
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        if seed is not None:
            self.action_space.seed(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        if not self._life_lost:  # a new life of the same game keeps counting that game's score
            self._return, self._length = 0.0, 0
        self._life_lost = False
        return self._observe(obs), info

    def step(self, action):
        """Step; the reward returned is the training one, the raw one is in ``info``."""
        obs, raw, terminated, truncated, info = self.env.step(action)
        raw = float(raw)
        self._return += raw
        self._length += 1
        reward = (float(np.sign(raw)) if self.scenario.clip_rewards else raw) * self.scenario.reward_scale
        info = {**info, "raw_reward": raw}
        self._life_lost = bool(info.get("life_lost"))
        if (terminated or truncated) and not self._life_lost:  # the whole game's score, not a life's
            info["episode"] = {"r": self._return, "l": self._length}
        return self._observe(obs), reward, terminated, truncated, info

    def last_frame(self) -> np.ndarray:
        """The game's full-resolution colour frame (HxWx3 uint8), for GIFs; needs a render mode."""
        if self._frames_env.render_mode is None:
            raise RuntimeError("this environment was made without render_mode='rgb_array': it has no frames")
        return np.asarray(self._frames_env.render())


def make_gym_env(spec: GymSpec, seed: int | None = None, render_mode: str | None = None,
                 training: bool = False) -> GymEnv:
    """Build ``spec``'s environment with its wrappers in a fixed order. ``render_mode="rgb_array"`` keeps
    frames for GIFs (``last_frame``), ``"human"`` also opens a window; None (training) renders nothing.
    ``training``: a game for the learner, where ``spec.episodic_life`` ends episodes at each life lost
    (evaluations and play count whole games)."""
    register_gym_envs()
    if render_mode not in (None, "human", "rgb_array"):
        raise ValueError("render_mode must be 'human', 'rgb_array' or None")
    if render_mode == "human" and not has_display():
        raise DisplayError("no display to show the game window on")
    kwargs = dict(spec.env_kwargs)
    if spec.atari:
        kwargs["frameskip"] = 1  # AtariPreprocessing does the skipping, max-pooling the last two frames
    # Only render where frames are wanted: some games do extra work when rendering is on (LunarLander
    # simulates its engine-flame particles as Box2D bodies, halving its speed).
    base_mode = None if render_mode is None else "rgb_array"
    if render_mode == "rgb_array":
        # Off-screen frames need no video device; without a desktop session SDL would otherwise print
        # "XDG_RUNTIME_DIR is invalid" with every GIF. (A window, render_mode="human", keeps the real one.)
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        base = gym.make(spec.env_id, render_mode=base_mode, **kwargs)
    except gym.error.Error as err:
        if spec.env_id.startswith("ALE/") and importlib.util.find_spec("ale_py") is None:
            raise ScenarioError(f"{spec.env_id}: Atari games need ale-py: pip install 'ale-py>=0.10,<0.13'") from err
        if isinstance(err, gym.error.DependencyNotInstalled) and "box2d" in str(err).lower():
            raise ScenarioError(f"{spec.env_id}: Box2D games need box2d: pip install 'box2d>=2.3.10'") from err
        raise ScenarioError(f"{spec.env_id}: {err}") from err
    env: gym.Env = base
    if spec.atari:
        env = gym.wrappers.AtariPreprocessing(
            env, noop_max=spec.noop_max, frame_skip=spec.frame_skip, screen_size=spec.screen_size,
            terminal_on_life_loss=False, grayscale_obs=spec.grayscale)
        if spec.episodic_life and training:
            env = EpisodicLife(env)
        if spec.fire_reset:
            env = FireReset(env)
    if spec.frame_stack > 1:
        env = gym.wrappers.FrameStackObservation(env, stack_size=spec.frame_stack)
    if render_mode == "human":
        env = gym.wrappers.HumanRendering(env)
    return GymEnv(env, spec, frames_env=base, seed=seed)
