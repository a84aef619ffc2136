"""Games beside Doom: Atari, classic control, Box2D, continuous control, on the real engines.

Each family: its spec loads from the data in scenarios/gym/, its env keeps the contract the worker relies
on, the model picks the right encoder and head, and the real worker trains on it for a few hundred steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import HANG

from doom_a3c.config import TrainConfig
from doom_a3c.envs import GymSpec, ScenarioError, ScenarioSpec, load_env_spec, make_env
from doom_a3c.messages import EpisodeDone
from doom_a3c.model import ActorCritic, CategoricalHead, ConvEncoder, GaussianHead, MlpEncoder
from doom_a3c.worker import Worker, make_shared_handles

# env id -> (observation shape, dtype, encoder, head)
FAMILIES = {
    "CartPole-v1": ((4,), np.float32, MlpEncoder, CategoricalHead),
    "LunarLander-v3": ((8,), np.float32, MlpEncoder, CategoricalHead),
    "Pendulum-v1": ((3,), np.float32, MlpEncoder, GaussianHead),
    "ALE/Pong-v5": ((4, 84, 84), np.uint8, ConvEncoder, CategoricalHead),  # 4 stacked grayscale frames
}


def test_names_resolve_to_doom_scenarios_gym_presets_and_bare_gym_ids():
    assert isinstance(load_env_spec("basic"), ScenarioSpec)
    pong = load_env_spec("ALE/Pong-v5")
    assert isinstance(pong, GymSpec) and pong.atari and pong.frame_skip == 4 and pong.name == "ALE-Pong-v5"
    assert load_env_spec("ALE-Pong-v5") == pong  # the directory-safe name that runs/ and models/ use
    cartpole = load_env_spec("CartPole-v1")
    assert cartpole.target_reward == 475 and cartpole.train["lstm"] is False and cartpole.source
    bare = load_env_spec("Acrobot-v1")  # registered, no preset: generic defaults
    assert bare.env_id == "Acrobot-v1" and not bare.atari and bare.train == {} and bare.source == ""


def test_unknown_environment_lists_what_is_known():
    with pytest.raises(ScenarioError) as err:
        load_env_spec("CartPole-v9")
    message = str(err.value)
    assert "unknown environment 'CartPole-v9'" in message
    assert "basic" in message and "LunarLander-v3" in message and "ALE/Pong-v5" in message


def test_a_gym_toml_with_unknown_keys_is_rejected(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('env_id = "CartPole-v1"\nframeskip = 2\n')
    with pytest.raises(ScenarioError, match="unknown keys.*frameskip"):
        load_env_spec(str(path))
    path.write_text('env_id = "CartPole-v1"\ntarget_reward = 100\n[train]\nlr = 0.01\n')
    spec = load_env_spec(str(path))
    assert spec.target_reward == 100 and spec.train == {"lr": 0.01}


@pytest.mark.parametrize("env_id", FAMILIES)
def test_each_family_keeps_the_env_contract(env_id):
    shape, dtype, encoder, head = FAMILIES[env_id]
    env = make_env(load_env_spec(env_id), seed=3, render_mode="rgb_array")
    try:
        obs, _ = env.reset()
        assert obs.shape == shape == env.observation_space.shape and obs.dtype == dtype
        frame = env.last_frame()
        assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
        assert env.steps_per_second > 0
        model = ActorCritic.from_spaces(env.observation_space, env.action_space, hidden_size=32)
        assert isinstance(model.encoder, encoder) and isinstance(model.policy, head)
        # Play a whole episode (random Pong: the computer's 21 points, a few thousand steps); the episode
        # stats add up the raw rewards.
        total, info = 0.0, {}
        for _ in range(30_000):
            obs, _, terminated, truncated, info = env.step(env.action_space.sample())
            total += info["raw_reward"]
            assert obs.shape == shape and obs.dtype == dtype
            if terminated or truncated:
                break
        else:
            pytest.fail("no episode ended in 30,000 steps")
        assert info["episode"]["r"] == pytest.approx(total)
        if env_id == "ALE/Pong-v5":
            assert -21 <= total < 0  # a point is +-1; the computer wins against random play
    finally:
        env.close()


def test_atari_uses_gymnasiums_preprocessing_and_clips_training_rewards():
    spec = load_env_spec("ALE/Pong-v5")
    env = make_env(spec, seed=0)
    try:
        names = []
        inner = env.env
        while hasattr(inner, "env"):
            names.append(type(inner).__name__)
            inner = inner.env
        assert "AtariPreprocessing" in names and "FrameStackObservation" in names
        assert env.unwrapped._frameskip == 1  # the wrapper skips 4 frames and max-pools the last two
        env.reset()
        for _ in range(2000):  # Pong: the computer scores within a few hundred steps of random play
            _, reward, terminated, truncated, info = env.step(env.action_space.sample())
            if info["raw_reward"]:
                assert reward == np.sign(info["raw_reward"]) * spec.reward_scale
                break
        else:
            pytest.fail("no point scored in 2000 steps")
    finally:
        env.close()


def test_continuous_actions_are_clipped_to_the_bounds():
    env = make_env(load_env_spec("Pendulum-v1"))
    model = ActorCritic.from_spaces(env.observation_space, env.action_space, hidden_size=16)
    env.close()
    clipped = model.policy.to_env(np.array([5.0], dtype=np.float32))
    assert clipped.tolist() == [2.0] and model.policy.to_env(np.array([-0.5])).tolist() == [-0.5]


def _worker(spec, **overrides):
    torch.manual_seed(0)
    cfg = TrainConfig(**{**spec.train, **overrides, "workers": 1})
    env = make_env(spec)
    model = ActorCritic.from_spaces(env.observation_space, env.action_space, cfg.hidden_size, lstm=cfg.lstm)
    env.close()
    handles = make_shared_handles(model, cfg)
    worker = Worker(0, cfg, spec, handles)
    return worker, model


def _train_steps(worker, steps):
    """Run the worker's real rollout-and-update for about ``steps`` env steps per game; return the stats."""
    obs = torch.stack([torch.as_tensor(env.reset()[0]) for env in worker.envs])
    state, start = worker.model.initial_state(len(worker.envs)), torch.ones(len(worker.envs))
    done_steps, all_stats = 0, []
    while done_steps < steps:
        obs, state, start, stats = worker.train_rollout(obs, state, start)
        all_stats.append(stats)
        done_steps += stats["steps"]
    return all_stats


@pytest.mark.parametrize("env_id,overrides", [
    ("CartPole-v1", {}),
    ("CartPole-v1", {"lstm": True}),
    ("LunarLander-v3", {}),
    ("Pendulum-v1", {}),
    ("ALE/Pong-v5", {"envs_per_worker": 2, "rollout_len": 20, "hidden_size": 32}),
    ("ALE/Pong-v5", {"envs_per_worker": 2, "rollout_len": 20, "hidden_size": 32, "lstm": True}),
])
def test_each_family_trains_for_a_few_hundred_steps(env_id, overrides):
    spec = load_env_spec(env_id)
    worker, shared = _worker(spec, **overrides)
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    try:
        stats = _train_steps(worker, 200)
    finally:
        worker.close()
    assert len(stats) >= 200 // worker.capacity
    assert all(np.isfinite(s["losses/total"]) and s["losses/grad_norm"] > 0 for s in stats)
    changed = [k for k, v in shared.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("policy") for k in changed) and any(k.startswith("value") for k in changed)
    assert any(k.startswith("encoder") for k in changed)


@pytest.mark.parametrize("advantage", ["returns", "returns-mean", "gae"])
def test_whole_episode_rollouts_hold_exactly_one_episode_per_game(advantage):
    spec = load_env_spec("CartPole-v1")
    worker, shared = _worker(spec, rollout_len=0, advantage=advantage, envs_per_worker=3)
    before = shared.value.weight.clone()
    try:
        obs = torch.stack([torch.as_tensor(env.reset()[0]) for env in worker.envs])
        state, start = worker.model.initial_state(3), torch.ones(3)
        obs, state, start, steps = worker.collect(obs, state, start)
        episodes = []
        # Everything the rollout sent, read up to a mark put behind it: one feeder thread delivers this
        # process's messages in the order they were put, so an extra episode would come before the mark.
        worker.shared.queue(0).put("end of rollout")
        while (message := worker.shared.queue(0).get(timeout=HANG)) != "end of rollout":
            if isinstance(message, EpisodeDone):
                episodes.append(message.length)
        mask, dones = worker.mask[:steps], worker.dones[:steps]
        assert len(episodes) == 3 and steps == max(episodes)  # the rollout lasts as long as the longest
        assert sorted(mask.sum(0).tolist()) == sorted(float(n) for n in episodes)
        for game in range(3):  # each game's real steps come first, and its last real step ends the episode
            length = int(mask[:, game].sum())
            assert mask[:length, game].all() and not mask[length:, game].any()
            assert dones[length - 1, game] == 1 and not dones[: length - 1, game].any()
        worker.update(torch.zeros(3), steps)
    finally:
        worker.close()
    # Only the learned-critic estimator trains the value head.
    assert torch.equal(shared.value.weight, before) == (advantage != "gae")


def test_lr_decay_follows_the_shared_frame_count():
    worker, _ = _worker(load_env_spec("CartPole-v1"), lr=0.01, lr_decay=True, max_frames=1000)
    before = [p.detach().clone() for p in worker.shared.model.parameters()]
    try:
        worker.shared.frames[0] = 250
        stats = _train_steps(worker, 1)
    finally:
        worker.close()
    # The rollout's own frames are counted before its update is sent (the budget check needs them).
    frames = 250 + stats[0]["frames"]
    assert worker.shared.total_frames() == frames
    expected = 0.01 * (1 - frames / 1000)
    assert stats[0]["charts/learning_rate"] == pytest.approx(expected)
    # Adam's first step moves each weight by about lr (m / sqrt(v) = sign(g)): the decayed lr was used.
    moved = max(float((p.detach() - b).abs().max()) for p, b in zip(worker.shared.model.parameters(), before))
    assert moved == pytest.approx(expected, rel=1e-3)
    with pytest.raises(ValueError, match="give --max-frames"):
        TrainConfig(lr_decay=True).validate()


def _play_one_game(env, rng) -> tuple[list[dict], list[int], float, list[int]]:
    """Random actions until a step reports a whole game's score; returns every ending step's info, the lives
    left at each start of play, the raw score counted here and the steps of each episode the learner saw."""
    endings, lives, score, steps = [], [], 0.0, [0]
    env.reset(seed=0)
    lives.append(env.unwrapped.ale.lives())
    for _ in range(20_000):
        _, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        score, steps[-1] = score + info["raw_reward"], steps[-1] + 1
        if terminated or truncated:
            endings.append(info)
            if "episode" in info:
                return endings, lives, score, steps
            steps.append(0)
            env.reset()
            lives.append(env.unwrapped.ale.lives())
    pytest.fail("no game over in 20,000 random steps")


def test_life_loss_ends_training_episodes_but_not_the_game_and_scores_stay_whole_games():
    """The peers' protocol (EpisodicLifeEnv): in a worker's game each lost life is a terminal step for the
    learner, then play goes on in the same game with one life fewer; only the game over reports a score, that
    of the whole game. Evaluations (training=False) play whole games with no such endings."""
    import dataclasses

    spec = dataclasses.replace(load_env_spec("ALE/Breakout-v5"), episodic_life=True, fire_reset=True)
    rng = np.random.default_rng(0)
    env = make_env(spec, seed=0, training=True)
    try:
        endings, lives, score, steps = _play_one_game(env, rng)
    finally:
        env.close()
    assert lives == [5, 4, 3, 2, 1], lives  # each life after the first continues the game
    assert [bool(info.get("life_lost")) for info in endings] == [True] * 4 + [False]
    assert all("episode" not in info for info in endings[:-1])
    assert endings[-1]["episode"] == {"r": score, "l": sum(steps)}  # all five lives, not the last one's

    env = make_env(spec, seed=0)  # an evaluation's game
    try:
        endings, lives, score, steps = _play_one_game(env, rng)
    finally:
        env.close()
    assert lives == [5] and len(endings) == 1 and "life_lost" not in endings[0]
    assert endings[0]["episode"] == {"r": score, "l": sum(steps)}


def test_fire_reset_serves_the_ball_and_needs_a_fire_action():
    import dataclasses

    spec = dataclasses.replace(load_env_spec("ALE/Breakout-v5"), fire_reset=True)
    env = make_env(spec, seed=0)
    try:
        env.reset(seed=0)
        # Served: with NOOPs only, the ball falls past the paddle and a life is lost; unserved, it never would.
        for _ in range(500):
            env.step(0)
            if env.unwrapped.ale.lives() < 5:
                break
        else:
            pytest.fail("the ball was not served: no life lost in 500 NOOP steps")
        # A whole game (evaluation, play): each later life is served too, so NOOPs end the game; a greedy
        # agent that never presses FIRE does not stand still until the frame limit.
        for _ in range(2_000):
            _, _, terminated, truncated, _ = env.step(0)
            if terminated or truncated:
                break
        assert terminated and not truncated and env.unwrapped.ale.lives() == 0
    finally:
        env.close()
    freeway = GymSpec(name="ALE-Freeway-v5", env_id="ALE/Freeway-v5", atari=True, frame_skip=4, fire_reset=True)
    with pytest.raises(ScenarioError, match="FIRE"):
        make_env(freeway)


def test_a_worker_learns_from_each_lost_life_and_reports_whole_games():
    """Breakout's preset (episodic_life): in the worker's rollouts each lost life is a done (nothing is
    bootstrapped across it), yet the episode the worker reports, and the curves show, is the whole game."""
    spec = load_env_spec("ALE/Breakout-v5")
    assert spec.episodic_life and spec.fire_reset
    worker, _ = _worker(spec, envs_per_worker=1, rollout_len=20, hidden_size=32)
    try:
        obs = torch.stack([torch.as_tensor(env.reset()[0]) for env in worker.envs])
        state, start = worker.model.initial_state(1), torch.ones(1)
        dones, games = [], []
        while not games and len(dones) < 20_000:
            obs, state, start, steps = worker.collect(obs, state, start)
            dones += worker.dones[:steps, 0].tolist()
            worker.shared.queue(0).put("end of rollout")  # everything the rollout sent comes before it
            while (message := worker.shared.queue(0).get(timeout=HANG)) != "end of rollout":
                if isinstance(message, EpisodeDone):
                    games.append(message)
    finally:
        worker.close()
    assert len(games) == 1, "no game over in 20,000 steps"
    # The game over is the fifth done: four lives lost before it, each a done of its own.
    ends = [t for t, done in enumerate(dones) if done]
    assert len(ends) >= 5 and games[0].length == ends[4] + 1, (ends, games[0])
