"""Shared fixtures. Every test runs the real ViZDoom engine headless; none needs a display."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

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


def run_script(script: str, *args: str, timeout: float = 300, env: dict | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run one of scripts/*.py the way a user does, in a fresh interpreter, and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=cwd)


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
