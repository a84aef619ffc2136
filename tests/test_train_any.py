"""scripts/train.py and play.py on games beside Doom, as a user runs them: a short CartPole run, its
checkpoint played back with a GIF, the random baseline, a learning check, and bad input."""

from __future__ import annotations

import re

import imageio.v3 as iio
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import call_main, run_script
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
    result = run_script("play.py", "--env", "CartPole-v1", "--episodes", "2", "--gif", "out.gif", "--gif-frames",
                        "30", cwd=where)
    assert result.returncode == 0, result.stderr
    assert "playing CartPole-v1 with your best model models/CartPole-v1/best.pt" in result.stdout
    assert "mean reward over 2 episodes" in result.stdout
    frames = iio.imread(where / "out.gif", index=None)
    assert 2 < frames.shape[0] <= 30 and frames.shape[3] == 3  # at most the first 30
    # The checkpoint alone says which game it is.
    result = run_script("play.py", "--checkpoint", str(where / "models" / "CartPole-v1" / "latest.pt"),
                        "--episodes", "1", cwd=where)
    assert result.returncode == 0 and "playing CartPole-v1" in result.stdout, result.stderr


def test_a_checkpoint_for_another_game_is_refused_with_the_reason(cartpole):
    where, _ = cartpole
    from doom_a3c.cli import play_main

    best = str(where / "models" / "CartPole-v1" / "best.pt")
    code, _, err = call_main(play_main, "--env", "Pendulum-v1", "--checkpoint", best)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "best.pt: model expects observations of shape (4,), but this environment gives (3,)" in err
    code, _, err = call_main(play_main, "--env", "Acrobot-v1", "--checkpoint", best)
    assert code == 2 and "shape (4,)" in err


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
    from doom_a3c.cli import train_any_main

    code, out, err = call_main(train_any_main, *args)
    assert code == 2 and message in err, out + err
    assert len(err.strip().splitlines()) == (2 if err.startswith("usage:") else 1), err  # argparse adds its usage


def test_list_envs_shows_doom_atari_and_gym_presets():
    result = run_script("train.py", "--list-envs")
    assert result.returncode == 0
    for name in ("basic", "ALE/Pong-v5", "ALE/Breakout-v5", "CartPole-v1", "LunarLander-v3", "Pendulum-v1"):
        assert name in result.stdout


@pytest.mark.slow
def test_cartpole_learns_with_the_defaults(tmp_path):
    """From the random agent's ~22 to 400, confirmed greedy over 20 episodes. Measured with this test's own
    settings (`seeds.py --env CartPole-v1 --seeds 5 --workers 2 --final-eval-episodes 20 --target-reward 400
    --max-minutes 0 --max-frames 500000`, issue 28): the weights that reached 400 had trained 0.05M, 0.42M,
    0.08M, 0.13M and 0.08M frames (seeds 1, 1001, 2001, 3001, 4001), and every final 20-episode evaluation
    was 500, 100 above what is asserted. The run trains on to the cap while the target is confirmed."""
    result = run_script("train.py", "--env", "CartPole-v1", "--max-frames", str(CARTPOLE_CAP), "--seed", "1",
                        "--workers", "2", "--final-eval-episodes", "20", "--target-reward", "400",
                        "--max-minutes", "0", cwd=tmp_path)  # the frame cap, not the preset's 5-minute guard
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout[-600:])
    # The target ends the run only where an evaluation comes in time (they pause 9 times their length):
    # the final evaluation, after the target or the cap, is what is asserted.
    assert float(re.search(r"final evaluation: ([-\d.]+)", result.stdout).group(1)) >= 400


CARTPOLE_CAP = 500_000
