"""The ViZDoom environment, on the real engine, headless."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from doom_a3c.envs import DoomEnv, load_scenario, make_env, preprocess_frame


@pytest.fixture
def env(basic_spec):
    env = make_env(basic_spec, seed=1)
    yield env
    env.close()


def test_observation_shape_dtype_and_space(env, basic_spec):
    obs, info = env.reset(seed=3)
    assert obs.shape == (1, 42, 42) == basic_spec.obs_shape
    assert obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert obs.std() > 0  # a real picture, not a blank frame
    assert env.last_frame().shape == (120, 160, 3)  # the full-resolution colour frame, for GIFs


def test_passes_gymnasium_env_checker(basic_spec):
    env = DoomEnv(basic_spec)
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_crop_then_resize_uses_only_the_cropped_region():
    spec = dataclasses.replace(load_scenario("basic"), crop=(10, 20, 30, 40), size=(20, 30), grayscale=True)
    frame = np.zeros((120, 160, 3), dtype=np.uint8)
    frame[10:100, 30:120] = 200  # exactly the region the crop keeps (top 10, bottom 20, left 30, right 40)
    obs = preprocess_frame(frame, spec)
    assert obs.shape == (1, 20, 30) and obs.dtype == np.uint8
    assert (obs == 200).all()  # nothing from outside the crop leaked in
    frame[10:100, 30:120] = 0
    frame[:10] = frame[100:] = 255
    frame[:, :30] = frame[:, 120:] = 255
    assert not preprocess_frame(frame, spec).any()


def test_colour_observation_is_channels_first():
    spec = dataclasses.replace(load_scenario("basic"), grayscale=False)
    frame = np.zeros((120, 160, 3), dtype=np.uint8)
    frame[..., 0] = 255  # pure red
    obs = preprocess_frame(frame, spec)
    assert obs.shape == (3, 42, 42)
    assert (obs[0] == 255).all() and not obs[1:].any()


def test_frame_skip_advances_that_many_tics(basic_spec):
    for skip in (1, 4):
        env = DoomEnv(dataclasses.replace(basic_spec, frame_skip=skip), seed=0)
        try:
            env.reset()
            start = env.game.get_episode_time()
            env.step(0)
            env.step(0)
            assert env.game.get_episode_time() - start == 2 * skip
        finally:
            env.close()


def test_reward_is_scaled_and_raw_reward_is_reported(env, basic_spec):
    env.reset(seed=0)
    _, reward, _, _, info = env.step(0)  # strafing costs -1 per tic
    assert info["raw_reward"] == pytest.approx(-basic_spec.frame_skip)
    assert reward == pytest.approx(info["raw_reward"] * basic_spec.reward_scale)


def test_timeout_is_truncation_not_termination(basic_spec):
    env = DoomEnv(dataclasses.replace(basic_spec, timeout=40), seed=0)
    try:
        env.reset()
        steps, terminated, truncated = 0, False, False
        while not (terminated or truncated):
            _, _, terminated, truncated, info = env.step(0)  # strafing only: never kills the monster
            steps += 1
        assert truncated and not terminated
        assert info["episode"]["l"] == steps == 10  # 40 tics / frame skip 4
        assert info["episode"]["r"] == pytest.approx(-40.0)
    finally:
        env.close()


def test_kill_is_termination(basic_spec):
    """Shooting until the monster dies ends the episode as terminated (a real ending, no bootstrap)."""
    env = DoomEnv(basic_spec, seed=0)
    try:
        for seed in range(20):
            env.reset(seed=seed)
            terminated = truncated = False
            while not (terminated or truncated):
                _, _, terminated, truncated, info = env.step(2)  # ATTACK, standing still
            if terminated:
                assert not truncated and info["episode"]["r"] > 0  # +101 for the kill
                return
        pytest.fail("in 20 episodes the monster never stood in front of the gun")
    finally:
        env.close()


def test_same_seed_same_episode(basic_spec):
    def first_frames(seed):
        env = DoomEnv(basic_spec)
        try:
            obs, _ = env.reset(seed=seed)
            return [obs] + [env.step(i % 3)[0] for i in range(5)]
        finally:
            env.close()

    a, b = first_frames(7), first_frames(7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
