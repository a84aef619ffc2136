"""The scripts as a user runs them: a short end-to-end training run, play.py on its checkpoint, Ctrl-C
and resume, and bad input (one clear line, exit code 2, no traceback)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import ROOT, run_script
from doom_a3c.checkpoint import load_checkpoint

QUICK = ["--workers", "2", "--envs-per-worker", "2", "--eval-episodes", "2", "--final-eval-episodes", "3",
         "--log-interval", "1"]


def _no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short real training run shared by the tests below: basic, a few thousand frames."""
    where = tmp_path_factory.mktemp("train")
    result = run_script("train_doom.py", "--scenario", "basic", "--max-frames", "6000", "--run-name", "e2e",
                        "--seed", "3", *QUICK, cwd=where)
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


def test_training_prints_progress_and_a_final_evaluation(trained):
    _, result = trained
    assert "fps" in result.stdout and "elapsed" in result.stdout
    assert "final evaluation:" in result.stdout and "over 3 episodes" in result.stdout


def test_training_writes_a_gif_with_many_frames(trained):
    where, _ = trained
    gifs = sorted((where / "frames" / "basic").glob("*.gif"))
    assert gifs
    frames = iio.imread(gifs[-1], index=None)
    assert frames.shape[0] > 1 and frames.shape[1:3] == (120, 160)


def test_training_writes_checkpoints_that_play_loads(trained, tmp_path):
    where, _ = trained
    for name in ("latest.pt", "best.pt"):
        payload = load_checkpoint(where / "models" / "basic" / name)
        assert payload["counters"]["frames"] >= 6000
    gif = tmp_path / "play.gif"
    result = run_script("play.py", "--checkpoint", str(where / "models" / "basic" / "best.pt"), "--episodes", "2",
                        "--gif", str(gif), "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert "episode 1: reward" in result.stdout and "episode 2: reward" in result.stdout
    assert "mean reward over 2 episodes" in result.stdout
    assert iio.imread(gif, index=None).shape[0] > 2


def test_play_finds_best_checkpoint_by_scenario(trained):
    where, _ = trained
    result = run_script("play.py", "--scenario", "basic", "--episodes", "1", "--sample", cwd=where)
    assert result.returncode == 0, result.stderr
    assert "sampled actions" in result.stdout


def _state_and_parent(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid from /proc/<pid>/stat; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def _running(pid: int) -> bool:
    info = _state_and_parent(pid)
    return info is not None and info[0] != "Z"


def _descendants(pid: int) -> list[int]:
    """Every running process below ``pid``: the workers and their game engines."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        info = _state_and_parent(int(entry.name))
        if info is not None and info[0] != "Z":
            children.setdefault(info[1], []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pids: list[int], seconds: float) -> list[int]:
    """The pids still running (not zombies) after waiting up to ``seconds`` for them to go."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [pid for pid in pids if _running(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _start_training(tmp_path, run_name):
    """Start train_doom.py and return once its workers have trained on some frames."""
    command = [sys.executable, str(ROOT / "scripts" / "train_doom.py"), "--scenario", "basic", "--run-name",
               run_name, *QUICK]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:
        line = process.stdout.readline()
        if not line or time.monotonic() > deadline:
            process.kill()
            raise AssertionError("training never reported progress")
        progress = re.match(r"frames\s+([\d.]+)", line)
        if progress and float(progress.group(1)) > 0:
            return process


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_saves_a_checkpoint_stops_every_process_and_resume_continues(tmp_path, stop_signal):
    process = _start_training(tmp_path, "int")
    try:
        below = _descendants(process.pid)
        assert len(below) >= 2 + 2 * 2, below  # two workers, each with two game engines
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "--resume" in out
    assert _alive(below, 10) == [], "workers or game engines outlived the trainer"
    latest = tmp_path / "models" / "basic" / "latest.pt"
    frames_before = load_checkpoint(latest)["counters"]["frames"]
    assert frames_before > 0
    if stop_signal == signal.SIGTERM:
        return  # resuming is the same code path whichever signal stopped the run; test it once
    result = run_script("train_doom.py", "--scenario", "basic", "--resume", "--run-name", "int2", "--max-frames",
                        str(frames_before + 3000), *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    payload = load_checkpoint(latest)
    assert payload["counters"]["frames"] >= frames_before + 3000
    assert payload["optimizer"] is not None


def test_workers_stop_on_their_own_when_the_trainer_is_killed(tmp_path):
    """SIGKILL leaves the trainer no chance to stop anything: the workers notice and close their games.
    (The trainer's own evaluation game is orphaned; only the trainer could have closed it.)"""
    process = _start_training(tmp_path, "killed")
    below = _descendants(process.pid)
    workers = [pid for pid in below if "multiprocessing.spawn" in _cmdline(pid)]
    workers_and_games = workers + [pid for worker in workers for pid in _descendants(worker)]
    try:
        assert len(workers) == 2 and len(workers_and_games) == 2 + 2 * 2, (workers, workers_and_games)
        process.kill()
        process.wait(timeout=30)
        assert _alive(workers_and_games, 30) == [], "workers or their games kept running after the trainer died"
    finally:
        for pid in _alive(below, 0):
            os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("args,fragment", [
    (["--scenario", "doom3"], "unknown scenario 'doom3'; known scenarios: basic, "),
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--rollout-len", "-5"], "--rollout-len must be 0 or more, got -5"),
    (["--gamma", "1.5"], "--gamma must be between 0 and 1"),
    (["--resume"], "checkpoint not found: models/basic/latest.pt"),
])
def test_train_bad_input_is_one_clear_line_and_exit_2(args, fragment):
    result = run_script("train_doom.py", *args)
    assert result.returncode == 2
    _no_traceback(result)
    assert fragment in result.stderr


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


def test_play_missing_checkpoint(tmp_path):
    result = run_script("play.py", "--scenario", "basic")
    assert result.returncode == 2
    _no_traceback(result)
    assert "checkpoint not found: models/basic/best.pt" in result.stderr


def test_play_corrupt_checkpoint(tmp_path):
    path = _checkpoint_for(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    result = run_script("play.py", "--checkpoint", str(path))
    assert result.returncode == 2
    _no_traceback(result)
    assert str(path) in result.stderr and "not a readable checkpoint" in result.stderr


def test_play_mismatched_checkpoint(tmp_path):
    path = _checkpoint_for(tmp_path)  # basic: 42x42 grayscale, 3 actions
    result = run_script("play.py", "--checkpoint", str(path), "--scenario", "deadly_corridor")  # 84x84, 7
    assert result.returncode == 2
    _no_traceback(result)
    assert str(path) in result.stderr and "(1, 42, 42)" in result.stderr and "(1, 84, 84)" in result.stderr


def test_play_render_without_display_says_what_to_do(tmp_path):
    path = _checkpoint_for(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "play.py"), "--render", "--checkpoint",
                             str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    _no_traceback(result)
    assert "xvfb-run" in result.stderr and "--gif" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
