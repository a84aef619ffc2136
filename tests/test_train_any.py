"""scripts/train.py and play.py on games beside Doom, as a user runs them: a short CartPole run, its
checkpoint played back with a GIF, the random baseline, a learning check, and bad input."""

from __future__ import annotations

import re

import imageio.v3 as iio
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_script
from doom_a3c.checkpoint import load_checkpoint

QUICK = ["--workers", "2", "--eval-episodes", "2", "--final-eval-episodes", "3", "--baseline-episodes", "5",
         "--log-interval", "1", "--eval-interval", "2"]


def _no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr


@pytest.fixture(scope="module")
def cartpole(tmp_path_factory):
    where = tmp_path_factory.mktemp("cartpole")
    result = run_script("train.py", "--env", "CartPole-v1", "--max-frames", "20000", "--run-name", "e2e", *QUICK,
                        cwd=where)
    assert result.returncode == 0, result.stdout + result.stderr
    return where, result


def test_train_py_runs_cartpole_with_its_presets_and_logs_the_random_baseline(cartpole):
    where, result = cartpole
    assert re.search(r"random agent: [\d.]+ ± [\d.]+ over 5 episodes", result.stdout)
    assert "training CartPole-v1: 2 workers x 8 games, target 475" in result.stdout  # the preset's defaults
    events = EventAccumulator(str(where / "runs" / "CartPole-v1" / "e2e"))
    events.Reload()
    assert {"eval/random_baseline", "eval/final_mean", "losses/value", "charts/episode_reward"} <= \
        set(events.Tags()["scalars"])
    payload = load_checkpoint(where / "models" / "CartPole-v1" / "best.pt")
    assert payload["model_kwargs"]["lstm"] is False and payload["model_kwargs"]["obs_shape"] == [4]
    assert payload["scenario"]["env_id"] == "CartPole-v1" and payload["config"]["scenario"] == "CartPole-v1"
    gifs = list((where / "frames" / "CartPole-v1").glob("*.gif"))
    assert gifs and iio.imread(gifs[0], index=None).shape[0] > 2


def test_play_py_plays_the_checkpoint_and_records_a_gif(cartpole):
    where, _ = cartpole
    result = run_script("play.py", "--env", "CartPole-v1", "--episodes", "2", "--gif", "out.gif", cwd=where)
    assert result.returncode == 0, result.stderr
    assert "playing CartPole-v1 with your best model models/CartPole-v1/best.pt" in result.stdout
    assert "mean reward over 2 episodes" in result.stdout
    frames = iio.imread(where / "out.gif", index=None)
    assert frames.shape[0] > 2 and frames.shape[3] == 3
    # The checkpoint alone says which game it is.
    result = run_script("play.py", "--checkpoint", str(where / "models" / "CartPole-v1" / "latest.pt"),
                        "--episodes", "1", cwd=where)
    assert result.returncode == 0 and "playing CartPole-v1" in result.stdout, result.stderr


def test_a_checkpoint_for_another_game_is_refused_with_the_reason(cartpole):
    where, _ = cartpole
    result = run_script("play.py", "--env", "Pendulum-v1", "--checkpoint",
                        str(where / "models" / "CartPole-v1" / "best.pt"), cwd=where)
    assert result.returncode == 2
    _no_traceback(result)
    assert "best.pt: model expects observations of shape (4,), but this environment gives (3,)" in result.stderr
    result = run_script("play.py", "--env", "Acrobot-v1", "--checkpoint",
                        str(where / "models" / "CartPole-v1" / "best.pt"), cwd=where)
    assert result.returncode == 2 and "shape (4,)" in result.stderr


def test_random_baseline_on_cartpole_is_about_twenty():
    result = run_script("play.py", "--env", "CartPole-v1", "--random", "--episodes", "100")
    assert result.returncode == 0, result.stderr
    assert "uniformly random actions" in result.stdout
    mean = float(re.search(r"mean reward over 100 episodes: ([\d.]+)", result.stdout).group(1))
    assert 15 < mean < 30


@pytest.mark.parametrize("args,message", [
    (["--env", "CartPole-v9"], "unknown environment 'CartPole-v9'; ViZDoom scenarios: basic"),
    ([], "give the environment: --env ID"),
    (["--env", "CartPole-v1", "--advantage", "returns"], "use --rollout-len 0"),
    (["--env", "CartPole-v1", "--advantage", "baseline"], "--advantage must be one of gae, returns, returns-mean"),
    (["--env", "ALE/Pong-v5", "--resume"], "checkpoint not found: models/ALE-Pong-v5/latest.pt"),
])
def test_bad_input_is_one_clear_line_and_exit_code_2(args, message):
    result = run_script("train.py", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    _no_traceback(result)
    assert message in result.stderr


def test_list_envs_shows_doom_atari_and_gym_presets():
    result = run_script("train.py", "--list-envs")
    assert result.returncode == 0
    for name in ("basic", "ALE/Pong-v5", "ALE/Breakout-v5", "CartPole-v1", "LunarLander-v3", "Pendulum-v1"):
        assert name in result.stdout


@pytest.mark.slow
def test_cartpole_learns_with_the_defaults(tmp_path):
    """A real improvement on a small budget: from the random agent's ~22 to well past it, greedy."""
    result = run_script("train.py", "--env", "CartPole-v1", "--max-frames", "400000", "--seed", "1",
                        "--final-eval-episodes", "20", "--target-reward", "1000", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    final = float(re.search(r"final evaluation: ([-\d.]+)", result.stdout).group(1))
    print(result.stdout[-600:])
    assert final > 150
