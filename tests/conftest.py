"""Shared fixtures. Every test runs the real ViZDoom engine headless; none needs a display."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# How long a test waits for a process, a line or a file before calling it hung. A bound for a hang, not for
# a slow machine: under a second training on the same two cores, Ray's workers took over two minutes to
# finish their first rollout and a whole basic run through Ray 221 s. pytest-timeout's 900 s is above it.
HANG = 600
# How long processes may take to be gone once they should be (killed, or their parent gone): waits return as
# soon as they are, so this bounds a leak, not a machine. On a CI machine starved for seconds at a time the
# supervisor itself noticed a dead worker only after 10-20 s.
GONE = 60

# One thread per test process: the suite must behave on a 2-core CI machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    """Run each test in its own folder, so ViZDoom's _vizdoom.ini and run outputs land there."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def basic_spec():
    from doom_a3c.envs import load_scenario

    return load_scenario("basic")


def run_script(script: str, *args: str, timeout: float = HANG, env: dict | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run one of scripts/*.py the way a user does, in a fresh interpreter, and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=cwd)


def call_main(main, *args: str) -> tuple[int, str, str]:
    """A script's main function called in this process, as its script would call it with ``args``: the exit
    code, stdout and stderr. For bad-input checks, which need no fresh interpreter (each one costs seconds of
    imports); one subprocess test per script checks that the script itself exits with that code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def scalars(run_dir: Path, tag: str) -> list:
    """A run's TensorBoard scalars under ``tag`` (none while its events file or the tag is not there yet)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not Path(run_dir).is_dir():
        return []
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return events.Scalars(tag) if tag in events.Tags()["scalars"] else []


# -- processes, read from /proc: what a run started and what is still running -------------------------
def _state_and_parent(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid from /proc/<pid>/stat; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    info = _state_and_parent(pid)
    return info is not None and info[0] != "Z"


def descendants(pid: int) -> list[int]:
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


def alive(pids: list[int], seconds: float) -> list[int]:
    """The pids still running (not zombies) after waiting up to ``seconds`` for them to go."""
    deadline = time.monotonic() + seconds
    while True:
        left = [pid for pid in pids if running(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_engine(pid: int) -> bool:
    """A ViZDoom engine process."""
    line = cmdline(pid)
    return "vizdoom" in line and "-iwad" in line


def is_worker(pid: int) -> bool:
    """A worker process (started with multiprocessing's spawn)."""
    return "multiprocessing.spawn" in cmdline(pid)


class ScriptRun:
    """One of scripts/*.py started in a session of its own (so that a signal sent to its process group
    reaches no test), its output read line by line as it comes."""

    def __init__(self, cwd, script: str, *args: str, preexec_fn=None):
        command = [sys.executable, str(ROOT / "scripts" / script), *args]
        self.process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True, preexec_fn=preexec_fn)
        self.lines: list[str] = []
        self.seen: set[int] = set()
        # The pipes are read by threads, so that a wait for a line has a real deadline even when the
        # trainer prints nothing at all (a readline on the pipe itself would block past it).
        self._out: queue.Queue = queue.Queue()
        self._err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.process.stdout, self._out.put), daemon=True),
                         threading.Thread(target=self._read, args=(self.process.stderr, self._err.append), daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe, sink) -> None:
        for line in pipe:
            sink(line)
        sink(None)  # end of output

    def wait_for(self, pattern: str, timeout: float = HANG) -> re.Match:
        """Read the progress output until a line matches ``pattern``. The bound catches a hang, not a slow
        machine: the output ending (the script exited) ends the wait at once, and on two cores that another
        training keeps busy, Ray's worker actors took over two minutes to finish their first rollout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._out.get(timeout=left)
            except queue.Empty:
                break
            if line is None:  # the output ended: put the mark back for the next wait
                self._out.put(None)
                break
            self.lines.append(line)
            self.seen.update(descendants(self.process.pid))
            found = re.search(pattern, line)
            if found:
                return found
        ended = self.process.poll()  # before the kill: did the script end by itself, and how?
        self.kill()
        self._collect()
        how = f"it ended with code {ended}" if ended is not None else f"nothing for {timeout:g} s"
        raise AssertionError(f"never printed /{pattern}/ ({how}):\n{''.join(self.lines)}\n"
                             f"stderr:\n{''.join(x for x in self._err if x is not None)[-3000:]}")

    def training(self) -> None:
        """Return once the workers have trained on some frames, every worker and game started."""
        self.wait_for(r"frames\s+[1-9]")

    def workers(self) -> list[int]:
        return [pid for pid in descendants(self.process.pid) if is_worker(pid)]

    def engines(self, below: int | None = None) -> list[int]:
        return [pid for pid in descendants(below or self.process.pid) if is_engine(pid)]

    def finish(self, timeout: float = HANG) -> tuple[int, str, str]:
        """Wait for the end; the exit code, everything printed, and stderr."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._collect()
            raise AssertionError(f"still running after {timeout:g} s; printed:\n{''.join(self.lines)}\n"
                                 f"stderr:\n{''.join(x for x in self._err if x is not None)}") from None
        finally:
            self.kill()
        self._collect()
        return self.process.returncode, "".join(self.lines), "".join(x for x in self._err if x is not None)

    def _collect(self) -> None:
        """Everything still in the pipes, once the process is gone."""
        for reader in self._readers:
            reader.join(timeout=30)
        while not self._out.empty():
            line = self._out.get()
            if line is not None:
                self.lines.append(line)

    def kill(self) -> None:
        """Leave nothing behind, whatever the test's outcome."""
        for pid in alive([*self.seen, *descendants(self.process.pid)], 0):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # it ended between the look and the kill (a stopping run's workers)
                pass
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for_port(process: subprocess.Popen, port: int, what: str) -> None:
    """Wait until ``process`` (a server being started) answers on 127.0.0.1:``port``; fail if it exits first
    or HANG passes."""
    import socket

    deadline = time.monotonic() + HANG
    while True:
        assert process.poll() is None and time.monotonic() < deadline, f"{what} did not come up"
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        time.sleep(0.5)
