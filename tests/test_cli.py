"""The scripts as a user runs them: a short end-to-end training run, play.py on its checkpoint, Ctrl-C
and resume, and bad input (one clear line, exit code 2, no traceback)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import HANG, ROOT, ScriptRun, call_main, run_script, scalars
from doom_a3c.checkpoint import load_checkpoint

QUICK = ["--workers", "2", "--envs-per-worker", "2", "--eval-episodes", "2", "--final-eval-episodes", "3",
         "--log-interval", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short real training run shared by the tests below: basic, a few thousand frames, its GIFs drawn
    explained (--explain-gifs). The same run through Ray, on a three-node cluster, is test_ray.py's."""
    where = tmp_path_factory.mktemp("train")
    result = run_script("train_doom.py", "--scenario", "basic", "--max-frames", "6000", "--run-name", "e2e",
                        "--seed", "3", *QUICK, "--explain-gifs", cwd=where)
    assert result.returncode == 0, result.stdout + result.stderr
    return where, result


def test_training_leaves_tensorboard_events(trained):
    where, result = trained
    run_dir = where / "runs" / "basic" / "e2e"
    assert list(run_dir.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(run_dir))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"charts/episode_reward", "charts/episode_length", "charts/fps", "losses/policy", "losses/value",
            "losses/entropy", "losses/grad_norm", "values/estimate", "eval/final_mean"} <= scalars
    assert len(events.Scalars("charts/episode_reward")) >= 1
    assert any("config" in tag for tag in events.Tags()["tensors"])  # the config, as text, at start
    assert (run_dir / "config.json").is_file()


PROGRESS = re.compile(r"^frames +([\d.]+)(k?) \| +(\d+) fps \| reward\(last 100\) +(-|-?[\d.]+) \| "
                      r"eval +(\S+) \(best (\S+)\) \| (\d\d):(\d\d) elapsed \| ETA ")


def test_training_prints_progress_and_a_final_evaluation(trained):
    """The progress lines' numbers are the run's: frames that grow to the budget, the frames/s TensorBoard
    logged, rewards a basic episode can score, a clock that runs on; then the final evaluation's mean."""
    where, result = trained
    lines = [PROGRESS.match(line) for line in result.stdout.splitlines() if line.startswith("frames ")]
    assert len(lines) >= 2 and all(lines), result.stdout
    frames = [float(m[1]) * (1000 if m[2] else 1) for m in lines]
    seconds = [int(m[7]) * 60 + int(m[8]) for m in lines]
    # On a fast machine the whole budget trains between two progress lines (every line then prints 0
    # frames): the closing line's count ends the sequence.
    stopped = re.search(r"^stopped \(max_frames\) after ([\d.]+)(k?) frames in (\d\d):(\d\d)", result.stdout, re.M)
    assert stopped, result.stdout
    frames.append(float(stopped[1]) * (1000 if stopped[2] else 1))
    seconds.append(int(stopped[3]) * 60 + int(stopped[4]))
    assert frames == sorted(frames) and seconds == sorted(seconds) and frames[-1] > frames[0]
    assert frames[-1] >= 6000
    saved = load_checkpoint(where / "models" / "basic" / "latest.pt")["counters"]
    assert frames[-1] <= saved["frames"] and seconds[-1] <= saved["seconds"] + 1
    events = EventAccumulator(str(where / "runs" / "basic" / "e2e"))
    events.Reload()
    logged = {round(e.value) for e in events.Scalars("charts/fps")}
    # 0 until the first 2 s window closes; on a fast machine the whole budget can train within it, so
    # every line may print 0: whatever else a line prints is a window TensorBoard logged.
    printed = {int(m[3]) for m in lines} - {0}
    assert printed <= logged and max(logged) > 0, (printed, logged)
    # "-" until an episode has ended: on a fast machine every line can come before the first one (the whole
    # budget trained between two lines), so whatever reward a line prints is checked.
    rewards = [float(m[4]) for m in lines if m[4] != "-"]
    assert all(-700 <= r <= 101 for r in rewards)  # -1 a tic, -5 a missed shot, +101 for the kill
    # Each printed reward is the mean of the last (up to) 100 episodes TensorBoard logged when it was printed.
    episodes = [e.value for e in events.Scalars("charts/episode_reward")]
    means = [sum(episodes[max(0, k - 100):k]) / len(episodes[max(0, k - 100):k]) for k in range(1, len(episodes) + 1)]
    assert all(min(abs(r - m) for m in means) <= 0.051 for r in rewards), (rewards, episodes)
    final = re.search(r"final evaluation: (-?[\d.]+) .*over 3 episodes", result.stdout)
    assert final and float(final[1]) == pytest.approx(events.Scalars("eval/final_mean")[-1].value, abs=0.05)


def test_training_writes_a_gif_with_many_frames_and_shows_it_in_tensorboard(trained):
    where, _ = trained
    gifs = sorted((where / "frames" / "basic").glob("*.gif"))
    assert gifs
    frames = iio.imread(gifs[-1], index=None)
    # Explained: the game 3x (360 high), a panel beside it (a plain one is the game's 120x160: test_ray.py).
    assert frames.shape[0] > 1 and frames.shape[1:3] == (360, 480 + 300)
    # The same GIF in TensorBoard's Images tab (an animated image: it plays there), at the run's last step.
    events = EventAccumulator(str(where / "runs" / "basic" / "e2e"), size_guidance={"images": 0})
    events.Reload()
    assert "eval/final_episode" in events.Tags()["images"]
    logged = events.Images("eval/final_episode")[-1]
    assert logged.encoded_image_string == gifs[-1].read_bytes()
    assert iio.imread(logged.encoded_image_string, index=None, extension=".gif").shape == frames.shape


def test_training_writes_checkpoints_that_play_loads(trained, tmp_path):
    where, _ = trained
    for name in ("latest.pt", "best.pt"):
        payload = load_checkpoint(where / "models" / "basic" / name)
        assert payload["counters"]["frames"] >= 6000
    gif = tmp_path / "play.gif"
    result = run_script("play.py", "--checkpoint", str(where / "models" / "basic" / "best.pt"), "--episodes", "2",
                        "--gif", str(gif), "--seed", "1", "--explain", "--gif-frames", "5")
    assert result.returncode == 0, result.stderr
    assert "episode 1: reward" in result.stdout and "episode 2: reward" in result.stdout
    assert "mean reward over 2 episodes" in result.stdout
    # --explain: the game 3x with the agent's view beside it; --gif-frames 5: only the first five frames.
    assert iio.imread(gif, index=None).shape[:3] == (5, 360, 480 + 300)


def test_play_finds_best_checkpoint_by_scenario(trained):
    where, _ = trained
    result = run_script("play.py", "--scenario", "basic", "--episodes", "1", "--sample", cwd=where)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    # The scenario's own best checkpoint, not the shipped model or a random agent, with sampled actions.
    assert first.startswith("playing basic with ") and first.endswith("sampled actions"), first
    assert "models/basic/best.pt" in first, first


@pytest.mark.parametrize("args,fragment", [
    (["--scenario", "doom3"], "unknown scenario 'doom3'; known scenarios: basic, "),
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--rollout-len", "-5"], "--rollout-len must be 0 or more, got -5"),
    (["--gamma", "1.5"], "--gamma must be between 0 and 1"),
    (["--entropy-beta-end", "-1"], "--entropy-beta-end must be 0 or more, got -1.0"),
    (["--entropy-beta-end", "0.001", "--max-frames", "0"], "--entropy-beta-end anneals the entropy bonus until "
                                                           "--max-frames: give --max-frames N"),
    (["--init", "he"], "--init must be one of torch, xavier, got 'he'"),
    (["--pixel-std", "0"], "--pixel-std must be positive, got 0.0"),
    (["--resume"], "checkpoint not found: models/basic/latest.pt"),
])
def test_train_bad_input_is_one_clear_line_and_exit_2(args, fragment):
    from doom_a3c.cli import train_main

    code, _, err = call_main(train_main, *args)
    assert code == 2 and fragment in err, err
    assert len(err.strip().splitlines()) == (2 if err.startswith("usage:") else 1), err  # argparse adds its usage


@pytest.mark.parametrize("script,args,fragment", [
    ("train_doom.py", ["--workers", "0"], "--workers must be at least 1, got 0"),
    ("train.py", ["--env", "CartPole-v9"], "unknown environment 'CartPole-v9'"),
    ("play.py", ["--episodes", "0"], "--episodes must be at least 1, got 0"),
    ("benchmark.py", ["--seconds", "0"], "--seconds must be positive"),
])
def test_each_script_exits_2_on_bad_input_without_a_traceback(script, args, fragment):
    """The scripts as a user runs them: the in-process checks of the main functions, here and in the other
    test files, stand for these."""
    result = run_script(script, *args)
    assert result.returncode == 2 and fragment in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_list_scenarios():
    result = run_script("train_doom.py", "--list-scenarios")
    assert result.returncode == 0
    for name in ("basic", "defend_the_center", "deadly_corridor", "my_way_home", "take_cover"):
        assert name in result.stdout


def _checkpoint_for(tmp_path, name="ck.pt"):
    from doom_a3c.checkpoint import save_checkpoint
    from doom_a3c.envs import load_scenario
    from doom_a3c.model import ActorCritic

    spec = load_scenario("basic")
    path = tmp_path / name
    save_checkpoint(path, model=ActorCritic(spec.obs_shape, spec.num_actions, 256), scenario=spec.to_dict(),
                    config={}, counters={"frames": 0})
    return path


def test_play_without_a_model_of_its_own_or_a_shipped_one_says_how_to_train_one(tmp_path):
    """Every shipped scenario has a model now; a scenario file of the user's own has none. The command it
    suggests names the file as it was given."""
    from doom_a3c.cli import play_main

    mine = tmp_path / "my_corridor.toml"
    shutil.copy(ROOT / "scenarios" / "deadly_corridor.toml", mine)
    code, _, err = call_main(play_main, "--scenario", str(mine))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "no model for my_corridor: models/my_corridor/best.pt does not exist and none is shipped" \
        in err and "basic" in err and f"train.py --env {mine}`" in err


def test_play_before_any_training_plays_the_shipped_model_and_says_so_first(tmp_path):
    """A fresh clone: no models/basic/best.pt, so play.py plays models/pretrained/basic.pt, names it on
    its first line, and prints the episodes that model plays (the same rewards as playing it in process)."""
    from doom_a3c.checkpoint import load_checkpoint
    from doom_a3c.envs import load_scenario
    from doom_a3c.pretrained import play_score, pretrained_path

    result = run_script("play.py", "--episodes", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("playing basic with the shipped model ") and "models/pretrained/basic.pt" in first
    rewards = [float(x) for x in re.findall(r"episode \d+: reward (-?[\d.]+)", result.stdout)]
    path = pretrained_path("basic")
    expected = play_score(load_scenario("basic"), load_checkpoint(path), path, episodes=3)
    assert len(rewards) == 3 and sum(rewards) / 3 == pytest.approx(expected["mean"], abs=0.05)  # printed to 0.1
    assert expected["mean"] > 0  # the random agent averages about -200


def test_play_corrupt_checkpoint(tmp_path):
    from doom_a3c.cli import play_main

    path = _checkpoint_for(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    code, _, err = call_main(play_main, "--checkpoint", str(path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(path) in err and "not a readable checkpoint" in err


def test_play_mismatched_checkpoint(tmp_path):
    from doom_a3c.cli import play_main

    path = _checkpoint_for(tmp_path)  # basic: 42x42 grayscale, 3 actions
    code, _, err = call_main(play_main, "--checkpoint", str(path), "--scenario", "deadly_corridor")  # 42x84, 10
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(path) in err and "(1, 42, 42)" in err and "(1, 42, 84)" in err


def test_play_render_without_display_says_what_to_do(tmp_path, monkeypatch):
    from doom_a3c.cli import play_main

    path = _checkpoint_for(tmp_path)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, _, err = call_main(play_main, "--render", "--checkpoint", str(path))
    assert code == 2
    assert "xvfb-run" in err and "--gif" in err
    assert len(err.strip().splitlines()) == 1


def test_a_sampled_evaluation_scenario_says_so_and_logs_its_shaped_reward(tmp_path):
    """health_gathering evaluates with sampled actions and shapes its reward: the run, TensorBoard, the
    checkpoint and play.py all say which mode a figure used, and the raw reward stays the one reported."""
    result = run_script("train_doom.py", "--scenario", "health_gathering", "--max-frames", "6000", "--run-name",
                        "hg", "--baseline-episodes", "0", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "target 2000 (sampled evaluation)" in result.stdout
    assert "over 3 episodes, sampled actions" in result.stdout
    events = EventAccumulator(str(tmp_path / "runs" / "health_gathering" / "hg"))
    events.Reload()
    raw = [e.value for e in events.Scalars("charts/episode_reward")]
    shaped = [e.value for e in events.Scalars("charts/episode_shaped_reward")]
    # The shaping is a bonus of 0.5 a point of health picked up: never below the raw reward, and above it in
    # the episodes where a medkit was taken (the runs here take one in most episodes).
    assert len(raw) == len(shaped) >= 1 and all(s >= r for r, s in zip(raw, shaped))
    assert any(s > r for r, s in zip(raw, shaped)), (raw, shaped)
    assert load_checkpoint(tmp_path / "models" / "health_gathering" / "best.pt")["evaluation"]["mode"] == "sampled"
    played = run_script("play.py", "--scenario", "health_gathering", "--episodes", "1", cwd=tmp_path)
    assert played.returncode == 0, played.stderr
    assert re.search(r"with sampled actions( over \d+ episodes)?\), sampled actions", played.stdout), played.stdout
    greedy = run_script("play.py", "--scenario", "health_gathering", "--episodes", "1", "--greedy", cwd=tmp_path)
    assert greedy.returncode == 0 and ", greedy actions" in greedy.stdout


def test_doom_results_runs_end_to_end_on_a_tiny_budget(tmp_path):
    out = tmp_path / "docs"
    # A stale run of the same scenario and seed in the same place: the re-run replaces it (its curve would
    # otherwise be read with the new one as a single run).
    from torch.utils.tensorboard import SummaryWriter
    with SummaryWriter(str(tmp_path / "runs" / "basic" / "results-seed1")) as stale:
        stale.add_scalar("charts/episode_reward", -999.0, 10**9)
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "doom_results.py"), "basic", "--max-frames",
                             "3000", "--workers", "2", "--seeds", "2", "--out-dir", str(out), "--runs-dir",
                             str(tmp_path / "runs")], capture_output=True, text=True, timeout=HANG, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    table = (out / "doom_results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| basic `")]
    assert [row.split(" | ")[1] for row in rows] == ["1", "1001"]  # one row a seed, in seed order
    for row in rows:
        assert row.startswith("| basic `--max-frames 3000 --workers 2` | ") and "| 75 | no (max_frames) |" in row
        assert "(greedy)" in row
    opts = "with `--max-frames 3000 --workers 2`, not counted"  # a capped run is not the preset's
    assert f"| basic | 75 | 2 | 0 of 2 | seed 1: not reached {opts}, seed 1001: not reached {opts} |" in table
    assert iio.imread(out / "doom_curves.png").shape[2] in (3, 4)
    saved = json.loads((out / "doom_results.json").read_text())
    assert [row["seed"] for row in saved] == [1, 1001]
    # Each seed trained with its own seed, in a run directory and a models directory of its own.
    for row in saved:
        config = json.loads((Path(row["run_dir"]) / "config.json").read_text())["train"]
        assert config["seed"] == row["seed"] and config["models_dir"].endswith(f"results-seed{row['seed']}")
    # basic's preset: 4 games x 30 steps x frame skip 4 = 480 frames a rollout, one rollout per worker past
    # the budget at most.
    bound = 3000 + 2 * 480
    for row in saved:
        curve = row["curves"]["training"]
        assert curve and all(step <= bound and reward > -999 for step, reward in curve)
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "doom_results.py"), "--plot-only", "--out-dir",
                            str(out)], capture_output=True, text=True, timeout=HANG, cwd=tmp_path)
    assert again.returncode == 0 and (out / "doom_results.md").read_text() == table
    bad = run_script("doom_results.py", "no_such_scenario")
    assert bad.returncode == 2 and "unknown scenario 'no_such_scenario'" in bad.stderr
    bad = run_script("doom_results.py", "basic", "--seeds", "0")
    assert bad.returncode == 2 and "--seeds must be at least 1, got 0" in bad.stderr


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_frame_budget_stops_within_one_rollout_per_worker_past_it(tmp_path, backend):
    """The supervisor is busy with a 20-episode evaluation from the first moment (seconds on any machine,
    while the workers could train tens of thousands of frames); the workers themselves stop at the budget."""
    if backend == "ray":
        pytest.importorskip("ray")
    result = run_script("train_doom.py", "--scenario", "basic", "--max-frames", "2000", "--run-name", "budget",
                        "--workers", "2", "--envs-per-worker", "2", "--rollout-len", "30", "--eval-interval", "0.01",
                        "--eval-episodes", "20", "--final-eval-episodes", "1", "--baseline-episodes", "0",
                        "--eval-mode", "sampled", *(["--ray", "local"] if backend == "ray" else []), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stopped (max_frames)" in result.stdout
    # --eval-mode overrides the scenario's greedy evaluations, and the checkpoint records it.
    assert "target 75 (sampled evaluation)" in result.stdout and "over 1 episodes, sampled actions" in result.stdout
    assert load_checkpoint(tmp_path / "models" / "basic" / "latest.pt")["evaluation"]["mode"] == "sampled"
    frames = load_checkpoint(tmp_path / "models" / "basic" / "latest.pt")["counters"]["frames"]
    per_rollout = 2 * 30 * 4  # games x steps x frame skip
    assert 2000 <= frames <= 2000 + 2 * per_rollout, frames


def test_evaluations_pause_nine_times_as_long_as_they_took(tmp_path):
    """Evaluations run beside the workers: asked for every 0.1 s, each one is still followed by a pause
    of at least nine times its own duration (charts/eval_seconds), so they take at most a tenth of a run.
    The run goes on until its events file holds two evaluations, however long that takes here (a target out
    of reach: on a fast machine basic reached 75 in 12 s, before the events file showed two, and ended itself)."""
    run = ScriptRun(tmp_path, "train_doom.py", "--scenario", "basic", "--max-frames", str(10**9), "--run-name",
                    "pause", "--target-reward", "1000", "--max-minutes", "0", "--baseline-episodes", "0",
                    "--eval-interval", "0.1", *QUICK[:4], "--eval-episodes",
                    "4", "--final-eval-episodes", "1", "--gif-interval", "0", "--log-interval", "1")
    run_dir = tmp_path / "runs" / "basic" / "pause"
    try:
        while len(scalars(run_dir, "charts/eval_seconds")) < 2:
            run.wait_for(r"^frames ")  # a progress line a second: a bounded wait, not a fixed one
        run.process.send_signal(signal.SIGINT)
        code, out, err = run.finish()
    finally:
        run.kill()
    assert code == 130, out + err
    took = scalars(run_dir, "charts/eval_seconds")
    # measured, not zero: once basic is learned its 4 episodes take a few steps each, under 10 ms on CI's machine
    assert len(took) >= 2 and all(e.value > 0 for e in took)
    for before, after in itertools.pairwise(took):
        pause = (after.wall_time - after.value) - before.wall_time  # end of one to the start of the next
        assert pause >= 9 * before.value - 0.05, (before.value, pause)


def test_evaluations_come_four_times_as_often_halfway_to_the_target(tmp_path):
    """Far from the target an evaluation waits --eval-interval; once the training mean or the last
    evaluation is halfway from the random agent's score to the target, a quarter of it."""
    import io

    from doom_a3c.config import TrainConfig
    from doom_a3c.envs import load_env_spec
    from doom_a3c.evaluator import Evaluator
    from doom_a3c.summaries import Summaries

    cfg = TrainConfig(scenario="CartPole-v1", eval_interval=20.0, models_dir=str(tmp_path))
    evaluator = Evaluator(cfg, load_env_spec("CartPole-v1"), 475.0, Summaries(io.StringIO()), tmp_path, "t",
                          save=lambda *a: None, on_env_restart=lambda *a: None)
    try:
        start = evaluator._last["eval"]
        assert not evaluator.due(start + 6, training_mean=400.0)  # no reference yet: the plain interval
        evaluator.reference = 25.0  # the random agent's mean; halfway to 475 is 250
        assert not evaluator.due(start + 6, training_mean=200.0) and evaluator.due(start + 21, training_mean=200.0)
        assert evaluator.due(start + 6, training_mean=260.0)
        evaluator.last_mean = 300.0
        assert evaluator.due(start + 6, training_mean=None)
        evaluator._seconds = 1.0  # the pause rule still holds: 9 s after a 1 s evaluation
        assert not evaluator.due(start + 6, training_mean=260.0) and evaluator.due(start + 9.5, training_mean=260.0)
    finally:
        evaluator.close()


@pytest.mark.parametrize("args,message", [
    (["--seconds", "0"], "--workers, --senders and --seconds must be positive, --warmup 0 or more"),
    (["--workers", "0"], "--workers, --senders and --seconds must be positive"),
    (["--parameter-server", "--senders", "0"], "--workers, --senders and --seconds must be positive"),
    (["--env", "NoSuchGame-v0"], "unknown environment 'NoSuchGame-v0'"),
])
def test_benchmark_bad_input_is_one_clear_line_and_exit_2(args, message, capsys):
    from doom_a3c.benchmark import main

    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_seeds_runs_one_preset_over_seeds_and_gives_the_median_frames_to_target(tmp_path):
    """Two CartPole runs against a target any policy reaches at the first evaluation (pushing one way
    from any start ends an episode at 8 steps at the soonest; the evaluation is greedy, so an untrained
    net scores about 9 and 15 needed learning within a speed-dependent number of evaluations, which a
    slow CI machine missed): both reach it, each under its own run name, and the summary counts them."""
    result = run_script("seeds.py", "--env", "CartPole-v1", "--seeds", "2", "--target-reward", "5",
                        "--max-frames", "40000", "--eval-interval", "1", "--workers", "1", "--eval-episodes", "3",
                        "--final-eval-episodes", "5", "--baseline-episodes", "0", "--run-name", "sd", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| 1 | target |" in result.stdout and "| 1001 | target |" in result.stdout
    assert "target reached by 2 of 2; frames to the target: median" in result.stdout
    assert result.stdout.count("stopped (target 5 reached by the weights of ") == 2
    assert sorted(p.name for p in (tmp_path / "runs" / "CartPole-v1").iterdir()) == ["sd-seed1", "sd-seed1001"]


def test_seeds_json_gives_a_run_stopped_by_its_minutes_as_a_missed_target(tmp_path):
    """--json: one row per run; --max-minutes ends a run that never reaches its target (1000 on CartPole,
    whose episodes end at 500), and the row says so."""
    result = run_script("seeds.py", "--env", "CartPole-v1", "--seeds", "1", "--target-reward", "1000",
                        "--max-minutes", "0.05", "--workers", "1", "--eval-episodes", "2", "--final-eval-episodes",
                        "2", "--baseline-episodes", "0", "--run-name", "mm", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (row,) = json.loads(result.stdout[result.stdout.index("[\n"):])
    assert row["seed"] == 1 and row["stop"] == "max_minutes" and row["reached"] is False
    # The clock starts with the trainer, so on a slow machine the workers may not have trained yet: frames >= 0.
    assert row["minutes"] >= 0.05 and row["frames"] >= 0 and 8 <= row["final_mean"] <= 500
    saved = load_checkpoint(tmp_path / "models" / "CartPole-v1" / "latest.pt")["counters"]
    assert saved["frames"] == row["frames"]
    from doom_a3c.seeds import format_seeds

    table = format_seeds([row, {**row, "seed": 1001, "stop": "target", "reached": True, "frames": 300_000}],
                         "CartPole-v1", 1000)
    assert "| 1 | max_minutes | " in table and "| 1001 | target | 0.30M |" in table
    assert "target reached by 1 of 2; frames to the target: median not reached (fewest 0.30M, most not reached)" \
        in table


def test_seed_summary_counts_a_missed_target_as_more_than_any_frames():
    from doom_a3c.seeds import summarize_seeds

    rows = [{"reached": True, "frames": 500_000, "minutes": 1.0},
            {"reached": False, "frames": 2_000_000, "minutes": 4.0},
            {"reached": True, "frames": 900_000, "minutes": 2.0}]
    summary = summarize_seeds(rows)
    assert summary["median_frames"] == 900_000 and summary["max_frames"] == float("inf")
    assert summary["reached"] == 2 and summary["median_minutes"] == 2.0


def _script_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sample_factory_side_by_side_reads_its_evaluation_as_the_stock_games_raw_reward(tmp_path):
    """Sample Factory's enjoy script logs the running mean of its episodes after each one with this format
    string (sample_factory/enjoy.py, 2.1.1); its gathering scenarios pay 0.01 a tic alive and nothing on death,
    where the stock game pays +1 a tic and -100 on death: the side-by-side compares the stock game's reward."""
    sf = _script_module("vs_sample_factory")
    line = "[2026-12-07 12:00:00,000][01234] Avg episode reward: %.3f, avg true_objective: %.3f"
    # Running means over the episodes so far: 21.0 (2,100 tics alive), then 3.07 (died after 307 tics), then 9.0.
    log = "\n".join(["[2026-12-07 12:00:00,000][01234] Num frames 100...", line % (45.0, 21.0),
                     line % (24.05, (21.0 + 3.07) / 2), line % (19.0, (21.0 + 3.07 + 9.0) / 3)])
    assert sf.episode_rewards("doom_health_gathering_supreme", log) == [2100.0, 207.0, 800.0]
    # Other scenarios keep the stock rewards: +1 a kill, -1 on death.
    log = "\n".join([line % (23.0, 23.0), line % (22.0, 22.0), line % (22.333, 22.333)])
    assert sf.episode_rewards("doom_defend_the_center", log) == [23.0, 21.0, 23.0]
    code, _, err = call_main(sf.main, "--sf-python", str(tmp_path / "missing"), "--env", "doom_basic",
                             "--minutes", "1")
    assert code == 2 and err.strip() == f"vs_sample_factory.py: error: no python at {tmp_path / 'missing'}"


def test_sample_factorys_training_hears_ctrl_c_when_started_from_a_background_job():
    """A background job inherits Ctrl-C ignored, and a Python started so installs no KeyboardInterrupt handler:
    vs_sample_factory.py's Ctrl-C at the end of the minutes would be lost. Its training is started with the
    default put back, so Python hears it; without that, it would not."""
    sf = _script_module("vs_sample_factory")
    probe = [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"]
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `command &` in a script leaves its children
    try:
        heard = subprocess.run(probe, capture_output=True, text=True, preexec_fn=sf._hear_ctrl_c).stdout.strip()
        deaf = subprocess.run(probe, capture_output=True, text=True).stdout.strip()
    finally:
        signal.signal(signal.SIGINT, before)
    assert (heard, deaf) == ("True", "False")


def test_the_results_page_puts_sample_factorys_runs_beside_ours(tmp_path):
    """doom_results.md gains the side-by-side section from vs_sample_factory.py's JSON rows: each Sample
    Factory run under our runs of the same scenario, with its frames/s from its own frames and minutes."""
    from doom_a3c.results import SIDE_BY_SIDE, side_by_side

    ours = {"scenario": "defend_the_center", "seed": 1001, "minutes": 10.6, "frames": 17_110_000, "fps": 27_020.0,
            "final_mean": 24.12, "final_std": 0.91, "eval_mode": "greedy"}
    assert side_by_side([ours], tmp_path / SIDE_BY_SIDE) == ""  # no Sample Factory run yet: no section
    (tmp_path / SIDE_BY_SIDE).write_text(json.dumps([{
        "env": "doom_defend_the_center", "seed": 1, "minutes": 10.5, "frames": 1_050_000,
        "sampled": {"mean": 5.25, "std": 2.0, "episodes": 100}, "greedy": {"mean": 4.0, "std": 1.5, "episodes": 100}}]))
    lines = side_by_side([ours], tmp_path / SIDE_BY_SIDE).splitlines()
    assert "## Side by side with Sample Factory" in lines
    assert lines[-2:] == [
        "| defend_the_center | doom_a3c (this) | 1001 | 10.6 | 17.11M | 27,020 | 24.1 ± 0.9 (greedy) |",
        "| defend_the_center | Sample Factory 2.1.1 APPO | 1 | 10.5 | 1.05M | 1,667 | 5.2 ± 2.0 (sampled), "
        "4.0 ± 1.5 (greedy) |"]


def test_progress_lines_print_rewards_to_the_targets_precision():
    """my_way_home's target is 0.97: its rewards print with two decimals (one showed 0.96 as 1.0, the
    target looking reached); a target of tens or more keeps one."""
    import io

    from doom_a3c.summaries import Summaries, reward_digits

    assert (reward_digits(0.97), reward_digits(-5), reward_digits(24), reward_digits(1500)) == (2, 2, 1, 1)
    summaries = Summaries(io.StringIO(), reward_digits(0.97))
    summaries.recent_rewards.extend([0.955, 0.965])
    line = summaries.progress_line(10**6, 100.0, "0.96", 0.9612, "sampled", 60.0, "1:00",
                                   {"env_restarts": 0, "worker_restarts": 0}, None)
    assert "reward(last 100)   0.96 |" in line and "eval sampled   0.96 (best 0.96)" in line


def test_the_seeds_table_counts_only_runs_of_the_preset_as_it_is():
    """A seed run with options of its own (a cap, or an earlier preset's settings) is shown with them and not
    counted: the scenario is reached only where every seed of its preset reached the target."""
    from doom_a3c.results import seeds_table

    row = {"scenario": "health_gathering_supreme", "target": 1500.0, "reached": True, "frames": 36_980_000,
           "minutes": 25.9, "target_frames": 36_250_000, "target_minutes": 25.1, "options": ""}
    old = {**row, "seed": 1, "options": "--envs-per-worker 8 --no-lr-decay"}
    new = {**row, "seed": 1001, "target_frames": 39_690_000, "target_minutes": 27.7}
    line = seeds_table([old, new]).splitlines()[-1]
    assert "| 1 of 2 |" in line and "with `--envs-per-worker 8 --no-lr-decay`, not counted" in line
    assert "| **2 of 2** |" in seeds_table([{**old, "options": ""}, new]).splitlines()[-1]
