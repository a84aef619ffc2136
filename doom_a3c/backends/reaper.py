"""Ends what a killed trainer leaves of its private Ray instance (``--ray local``).

Ray ties its store, scheduler and actors to the trainer, but two of its helper processes (the dashboard
and runtime-env agents) outlive a trainer killed with SIGKILL by a minute or more: they try to report the
loss to Ray's control store, which died with it, and wait out a 60-second timeout. The trainer starts this
script with a pipe on its stdin; while the trainer lives, it notes every process below it once a second;
when the pipe closes (the trainer has ended, however it ended), it kills the ones still running.

Run as ``python -I -S reaper.py TRAINER_PID``: standard library only, no site packages.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

POLL = 1.0  # seconds between looks at the trainer's processes
GRACE = 3.0  # seconds Ray gets to end its processes itself once the trainer has gone


def _stat(pid: int) -> tuple[int, int] | None:
    """A process's parent pid and start time (the pair names it: pids are reused); None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[1]), int(fields[19])) if fields[0] != "Z" else None


def descendants(root: int) -> dict[int, int]:
    """Every live process below ``root``: pid -> start time."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None:
                children.setdefault(info[0], []).append((int(entry), info[1]))
    found: dict[int, int] = {}
    todo = [root]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            found[pid] = started
            todo.append(pid)
    return found


def main(trainer: int) -> None:
    seen: dict[int, int] = {}
    while not select.select([sys.stdin], [], [], POLL)[0]:  # readable only at EOF: the trainer is gone
        seen.update(descendants(trainer))
    sys.stdin.read()
    seen.pop(os.getpid(), None)
    deadline = time.monotonic() + GRACE
    while time.monotonic() < deadline and any(_alive(pid, started) for pid, started in seen.items()):
        time.sleep(0.2)
    for pid, started in seen.items():
        if _alive(pid, started):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _alive(pid: int, started: int) -> bool:
    info = _stat(pid)
    return info is not None and info[1] == started


if __name__ == "__main__":
    main(int(sys.argv[1]))
