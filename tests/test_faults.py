"""Faults on the real engine, with train_doom.py run as a user runs it: signals to the trainer and to its
process group, a killed and a hung game, killed workers, a killed trainer, resume, unwritable outputs.
Each test checks that no worker and no ViZDoom engine of the run is left afterwards."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import (GONE, HANG, ROOT, ScriptRun, alive, call_main, cmdline, descendants, is_engine, is_worker,
                      run_script, scalars)
from doom_a3c.checkpoint import load_checkpoint

# A target out of reach and no clock: these runs end by the fault, the signal or the budget a test gives, never
# by themselves (basic reaches its 75 within 12 s on a fast machine; its preset's 9-minute guard is close to
# what the slowest test takes beside a second training).
QUICK = ["--scenario", "basic", "--workers", "2", "--envs-per-worker", "2", "--eval-episodes", "2",
         "--final-eval-episodes", "3", "--log-interval", "1", "--baseline-episodes", "2", "--target-reward", "1000",
         "--max-minutes", "0"]


class Training(ScriptRun):
    """train_doom.py on basic with the quick settings above (``workers`` workers of 2 games), in a session
    of its own."""

    def __init__(self, cwd, *args: str, preexec_fn=None, workers: int = 2):
        super().__init__(cwd, "train_doom.py", *QUICK, "--workers", str(workers), *args, preexec_fn=preexec_fn)
        self.expected = workers

    def training(self) -> None:
        """Return once the run has trained on some frames and every worker's games run (2 each, and the
        evaluation game): the first frames may all be one worker's while another, on a busy machine, is
        still starting its games."""
        super().training()
        deadline = time.monotonic() + 600  # a hang, not a slow start
        while len(self.engines()) < 2 * self.expected + 1:
            if time.monotonic() > deadline or self.process.poll() is not None:
                below = [cmdline(pid) for pid in descendants(self.process.pid)]
                raise AssertionError(f"the games never all started: {below}")
            time.sleep(0.1)


def _progress_frames(run: ScriptRun) -> float:
    """The frame count of the next progress line ("frames 440.16k | ...")."""
    number, unit = run.wait_for(r"^frames\s+([\d.]+)([kM]?) \|").groups()
    return float(number) * {"": 1, "k": 1e3, "M": 1e6}[unit]


def _trains_on(run: ScriptRun) -> float:
    """Wait until a progress line counts more frames than the next one does (bounded by wait_for): the
    workers are training; returns that count."""
    at = _progress_frames(run)
    while (now := _progress_frames(run)) <= at:
        pass
    return now


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_to_the_process_group_saves_a_checkpoint_and_leaves_nothing(tmp_path, stop_signal):
    """What a closed terminal, Ctrl-C, `timeout -s TERM` or a job scheduler does: signal the whole group."""
    run = Training(tmp_path, "--run-name", "grp")
    run.training()
    below = descendants(run.process.pid)
    assert len(run.workers()) == 2 and len(run.engines()) == 2 * 2 + 1, below  # + the evaluation game
    os.killpg(run.process.pid, stop_signal)
    code, out, err = run.finish()
    assert code == 130, err
    _no_traceback(err)
    assert "--resume" in out
    assert alive(below, GONE) == [], "workers or game engines outlived the trainer"
    assert load_checkpoint(tmp_path / "models" / "basic" / "latest.pt")["counters"]["frames"] > 0


def test_resume_continues_the_same_run_and_its_clock(tmp_path):
    run = Training(tmp_path, "--run-name", "first")
    run.training()
    run.process.send_signal(signal.SIGINT)
    code, _, err = run.finish()
    assert code == 130, err
    saved = load_checkpoint(tmp_path / "models" / "basic" / "latest.pt")["counters"]
    before = saved["frames"]

    result = run_script("train_doom.py", *QUICK, "--resume", "--max-frames", str(before + 4000), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming first at" in result.stdout and "resumed at" in result.stdout
    assert [p.name for p in (tmp_path / "runs" / "basic").iterdir()] == ["first"]  # no second run directory
    steps = [event.step for event in scalars(tmp_path / "runs" / "basic" / "first", "charts/fps")]
    assert min(steps) < before < max(steps)  # one frame axis across both sessions
    after = load_checkpoint(tmp_path / "models" / "basic" / "latest.pt")
    assert after["counters"]["frames"] >= before + 4000 and after["optimizer"] is not None
    assert after["counters"]["seconds"] > saved["seconds"]  # the clock counts both sessions
    assert after["run"]["name"] == "first"


def test_a_killed_and_a_hung_game_are_replaced_and_training_goes_on(tmp_path):
    """A game engine killed (a crash) and one stopped (a game that never answers again, replaced after
    --env-timeout): both games are replaced and training goes on. No frame budget: on a fast machine the
    other worker spent one before the watchdog fired; Ctrl-C ends the run once both are seen."""
    run = Training(tmp_path, "--run-name", "games", "--env-timeout", "2")
    run.training()
    workers = run.workers()
    killed, stopped = run.engines(workers[0])[0], run.engines(workers[1])[0]
    os.kill(killed, signal.SIGKILL)  # a crash
    os.kill(stopped, signal.SIGSTOP)  # a game that never answers again
    hung = r"game \d of worker \d restarted: engine did not answer within 2 s"
    # The killed engine: its game is replaced, or, about one time in a hundred, the engine died holding
    # ViZDoom's message-queue lock and its worker is ended and started again (envs/engine.py).
    crashed = (r"game \d of worker \d restarted: engine failed|"
               r"worker \d died \(EngineError: game engine \d+ died holding ViZDoom's message-queue lock")
    while not (re.search(hung, "".join(run.lines)) and re.search(crashed, "".join(run.lines))):
        run.wait_for(rf"{hung}|{crashed}")
    _trains_on(run)  # after both
    # The restart seen was the stopped game's (on a busy machine another game can be slow past 2 s too):
    # only the watchdog kills a stopped engine.
    assert alive([stopped], GONE) == [], f"the stopped engine {stopped} was never replaced"
    run.process.send_signal(signal.SIGINT)
    code, out, err = run.finish()
    assert code == 130, out + err
    _no_traceback(err)
    run_dir = tmp_path / "runs" / "basic" / "games"
    if re.search(r"game \d of worker \d restarted: engine failed", out):
        restarts = scalars(run_dir, "charts/env_restarts")
        assert restarts and max(event.value for event in restarts) >= 2
    else:
        assert scalars(run_dir, "charts/env_restarts") and scalars(run_dir, "charts/worker_restarts")
    assert alive(list(run.seen), GONE) == [], "a game engine or worker of the run is still running"


STUCK_CALL = """
import sys, time
from doom_a3c.envs import DoomEnv, load_scenario
env = DoomEnv(load_scenario("basic"), seed=0, engine_timeout=1.0)
env.reset()
print(env.engine_pid, flush=True)
env._timer.start()  # a call into the engine that never returns, as when a dead engine kept ViZDoom's lock
time.sleep(60)
"""


def test_a_call_stuck_after_its_engine_was_killed_ends_the_process_with_the_reason():
    """The watchdog kills the engine at the call's deadline; when the call still has not returned 3 s
    later, no call on that game ever will, and the process ends saying why (a worker is then restarted)."""
    child = subprocess.Popen([sys.executable, "-c", STUCK_CALL], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=HANG)
    finally:
        child.kill()
    assert child.returncode == 1, err  # the script itself would end with 0 after its 60 s sleep
    engine = int(out.split()[0])
    assert f"game engine {engine} died holding ViZDoom's message-queue lock" in err
    assert err.strip().endswith("ending this process")
    _no_traceback(err)
    assert alive([engine], GONE) == []


def test_a_worker_with_a_stuck_game_tells_the_trainer_why_before_it_ends():
    import multiprocessing as mp

    from doom_a3c.messages import WorkerFailed

    ctx = mp.get_context("spawn")
    channel = ctx.Queue()
    process = ctx.Process(target=_report_wedged_in_child, args=(channel,))
    process.start()
    message = channel.get(timeout=HANG)
    process.join(30)
    assert process.exitcode == 1
    assert isinstance(message, WorkerFailed) and message.rank == 3
    assert message.error == "EngineError: game engine 42 died holding the lock"


def _report_wedged_in_child(channel) -> None:
    from types import SimpleNamespace

    from doom_a3c.worker import _report_wedged_game

    _report_wedged_game(3, SimpleNamespace(queue=lambda rank: channel), "game engine 42 died holding the lock")


def test_the_stop_flag_still_works_after_a_worker_is_killed_waiting_on_it():
    """A worker idles in ``stop.wait`` once the budget is spent; killed there (kill -9, or the supervisor's
    own kill of a stalled worker), it must not take the flag with it. An ``mp.Event`` would: its ``set``
    then waits forever for the dead sleeper to wake, and the trainer hangs on stopping."""
    import multiprocessing as mp

    from doom_a3c.worker import StopFlag

    ctx = mp.get_context("spawn")
    flag, ready = StopFlag(ctx), ctx.Event()
    process = ctx.Process(target=_wait_on_flag, args=(flag, ready))
    process.start()
    assert ready.wait(60), "the child never started waiting"
    # Inside wait(), asleep: the process is in clock_nanosleep (x86-64 system call 230), time.sleep's call.
    deadline = time.monotonic() + 60
    while Path(f"/proc/{process.pid}/syscall").read_text().split()[0] != "230":
        assert time.monotonic() < deadline, "the child never slept in wait()"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    setter = threading.Thread(target=flag.set, daemon=True)
    setter.start()
    setter.join(GONE)
    assert not setter.is_alive(), "set() hangs after a waiter was killed"
    assert flag.is_set() and flag.wait(0.0)


def _wait_on_flag(flag, ready) -> None:
    ready.set()
    flag.wait(60)


def test_a_killed_and_a_stalled_worker_are_restarted_and_training_goes_on(tmp_path):
    """A worker killed outright, then its replacement stopped (SIGSTOP: alive, but no rollout finishes)
    until --worker-timeout; each is replaced, its games go with it, and training goes on. One worker, so
    that frames counted after a restart are the replacement's own rollouts (a worker stopped before its
    first rollout would have the start's 10 minutes, not --worker-timeout). No frame budget: on a fast
    machine a budget could be spent before the second fault; Ctrl-C ends the run."""
    run = Training(tmp_path, "--run-name", "worker", "--worker-timeout", "30", workers=1)
    run.training()
    (victim,) = run.workers()
    games = run.engines(victim)
    os.kill(victim, signal.SIGKILL)
    assert alive(games, GONE) == [], "the killed worker's games outlived it"
    run.wait_for(r"worker 0 died \(killed by SIGKILL\); started it again")
    _trains_on(run)  # the replacement has finished rollouts
    (stalled,) = run.workers()
    games = run.engines(stalled)
    os.kill(stalled, signal.SIGSTOP)
    run.wait_for(r"worker 0 died \(no rollout finished for 30 s\); started it again")
    assert alive([stalled, *games], GONE) == [], "the stalled worker or its games outlived it"
    at = _trains_on(run)  # training goes on
    run.process.send_signal(signal.SIGINT)
    code, out, err = run.finish()
    assert code == 130, out + err
    saved = load_checkpoint(tmp_path / "models" / "basic" / "latest.pt")["counters"]
    # At least what the last progress line counted (printed to 10 frames: "440.16k").
    assert saved["worker_restarts"] == 2 and saved["frames"] >= at - 5, saved
    assert scalars(tmp_path / "runs" / "basic" / "worker", "charts/worker_restarts")
    assert alive(list(run.seen), GONE) == []


def test_workers_that_keep_dying_stop_training_with_a_checkpoint(tmp_path):
    run = Training(tmp_path, "--run-name", "dying", "--max-worker-restarts", "1")
    run.training()
    os.kill(run.workers()[0], signal.SIGKILL)
    run.wait_for(r"started it again")
    run.training()
    os.kill(run.workers()[1], signal.SIGKILL)
    code, out, err = run.finish()
    assert code == 1, out + err
    _no_traceback(err)
    assert "training stopped: workers died 2 times in 10 minutes (more than --max-worker-restarts 1)" in out
    assert load_checkpoint(tmp_path / "models" / "basic" / "latest.pt")["counters"]["frames"] > 0
    assert alive(list(run.seen), GONE) == []


def test_killing_the_trainer_leaves_no_worker_and_no_game(tmp_path):
    """SIGKILL gives the trainer no chance to stop anything: the kernel ends its workers and every engine,
    the evaluation game's included."""
    run = Training(tmp_path, "--run-name", "killed", "--no-cpu-affinity")
    run.training()
    below = descendants(run.process.pid)
    assert len(run.engines()) == 2 * 2 + 1
    # --no-cpu-affinity: no worker or game is pinned, each may run on every core the trainer may
    # (test_worker.py checks the pinning that is on by default).
    assert all(os.sched_getaffinity(pid) == os.sched_getaffinity(run.process.pid)
               for pid in [*run.workers(), *run.engines()])
    run.process.kill()
    run.process.wait(timeout=GONE)
    assert alive(below, GONE) == [], "workers or game engines kept running after the trainer died"
    run.kill()


@pytest.mark.parametrize("option", ["--models-dir", "--runs-dir", "--frames-dir"])
def test_an_output_directory_that_cannot_be_written_is_refused_before_anything_starts(tmp_path, option):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    from doom_a3c.cli import train_main

    code, out, err = call_main(train_main, *QUICK, option, str(blocker / "out"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{option} {blocker / 'out'}: cannot write to" in err
    # Refused before anything started: no training line, no events file, no worker or game left.
    assert "training" not in out and not list(tmp_path.glob("runs/**/events.out.tfevents.*"))
    assert not [pid for pid in descendants(os.getpid()) if is_worker(pid) or is_engine(pid)]


def _ignore_file_size_signal() -> None:
    """In the trainer: a write past the file-size limit then fails with EFBIG instead of killing it."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_checkpoint_that_cannot_be_written_leaves_the_previous_one_and_training_goes_on(tmp_path):
    # Where the budget is spent first, the save at the end is the one that fails: the same line, the same checks.
    # One worker: its frames cannot come before its own games (nor the evaluation game, started before any
    # worker), so every game is seen at the first progress line however slowly a busy machine starts them. With
    # two, CI's slow second worker was still starting its games when the first had spent the whole budget. The
    # target, 1000, is out of reach, so only the budget ends it.
    run = Training(tmp_path, "--run-name", "full", "--max-frames", "200000", "--checkpoint-interval", "1",
                   preexec_fn=_ignore_file_size_signal, workers=1)
    run.training()
    # From now on no file of the trainer's may grow past 500 kB: as far as a 2 MB checkpoint goes, the
    # disk is full. The workers (other processes) are not limited.
    resource.prlimit(run.process.pid, resource.RLIMIT_FSIZE, (500_000, resource.RLIM_INFINITY))
    latest = tmp_path / "models" / "basic" / "latest.pt"
    # Saves are made one after the other by the trainer: once one has failed, none is under way and every
    # later one fails too, so latest.pt holds its last bytes from here on.
    run.wait_for(r"could not write models/basic/latest.pt")
    previous = latest.read_bytes()
    code, out, err = run.finish()
    assert code == 0, out + err
    _no_traceback(err)
    assert out.count("could not write models/basic/latest.pt (File too large); the previous one is intact; "
                     "training goes on") == 1, out  # said once, not at every save
    assert "final evaluation:" in out
    assert latest.read_bytes() == previous and not list(latest.parent.glob(".latest.pt.*.tmp"))
    assert load_checkpoint(latest)["counters"]["frames"] > 0
    assert alive(list(run.seen), GONE) == []


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL", "server"])
def test_a_ray_local_run_leaves_no_ray_process_however_it_ends(tmp_path, how):
    """--ray local starts Ray's own processes (its store, scheduler and actors) below the trainer: a
    SIGTERM stops them in order after a checkpoint, and a SIGKILL takes every one of them down too. Losing
    the parameter server (SIGKILL to its actor: the weights and Adam state are gone) ends the run with exit
    code 1, one line that says so and names the checkpoint kept, and nothing left running."""
    pytest.importorskip("ray")
    run = Training(tmp_path, "--run-name", "ray", "--ray", "--checkpoint-interval", "1")
    run.training()
    below = descendants(run.process.pid)
    assert any("raylet" in cmdline(pid) for pid in below) and len(run.engines()) == 2 * 2 + 1
    latest = tmp_path / "models" / "basic" / "latest.pt"
    if how == "server":
        deadline = time.monotonic() + 600  # a periodic checkpoint, a second after training started (a hang bound)
        while not latest.exists() and time.monotonic() < deadline and run.process.poll() is None:
            time.sleep(0.2)
        assert latest.exists(), "no periodic checkpoint was written"
        server = [pid for pid in below if "ray::ParameterServer" in cmdline(pid)]
        assert len(server) == 1, [cmdline(pid) for pid in below]
        os.kill(server[0], signal.SIGKILL)
        code, out, err = run.finish()
        assert code == 1, out + err
        _no_traceback(err)
        kept = re.search(r"training stopped: the parameter server was lost \(\w+\).*; the last checkpoint, "
                         r"models/basic/latest.pt at \S+ frames, is kept \(continue with --resume\)", out)
        assert kept, out
        assert "checkpoint saved to" not in out, out
        assert load_checkpoint(latest)["counters"]["frames"] > 0
    else:
        os.kill(run.process.pid, getattr(signal, how))
    if how == "SIGTERM":
        code, out, err = run.finish()
        assert code == 130 and "checkpoint saved to models/basic/latest.pt" in out, out + err
        assert load_checkpoint(latest)["counters"]["frames"] > 0
    run.process.wait(timeout=60)
    assert alive(below, GONE) == [], [cmdline(pid) for pid in alive(below, 0)]
    run.kill()


def test_the_training_default_engine_timeout_is_the_engines_own():
    """--env-timeout's default is written out in config.py (importing the engines there would load them);
    it must stay what a game made without one gets."""
    from doom_a3c.config import TrainConfig
    from doom_a3c.envs.engine import ENGINE_TIMEOUT

    assert TrainConfig().env_timeout == ENGINE_TIMEOUT
