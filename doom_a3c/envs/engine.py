"""The ViZDoom engine process: it dies with its owner, and a call it never answers is cut short.

Two faults seen in real runs (issue 11):

* ViZDoom starts each game's engine as a child process of the process that created the game; when that
  owner was killed (``kill -9`` of a worker or of the trainer), its engines ran on forever. Games made
  here start the engine through ``vizdoom-owned`` / ``engine_launcher.py``, which set the Linux
  parent-death signal before becoming the engine, so the kernel kills it with its owner.
* A stopped or wedged engine leaves ``make_action`` waiting forever. ViZDoom releases the GIL while it
  waits, so one watchdog thread per process can notice a call that has run past its time limit and kill
  that engine; the blocked call then raises ViZDoom's "instance crash" at once.

And one that no watchdog can mend: an engine that dies (SIGKILL, a crash) while it holds the lock of the
message queue it shares with ViZDoom's controller leaves that lock held for good. The controller's thread
that saw the engine exit then waits forever to say so, and the game's call waits forever to hear it.
Measured: about 1 in 100 engines killed in the middle of a game (with ViZDoom's own launcher as with
ours). No call on that game will ever return, so the watchdog ends the whole process (``on_wedged``): a
training worker is then started again by its supervisor, like any worker that died.
"""

from __future__ import annotations

import glob
import os
import signal
import sys
import threading
import time
import weakref
from pathlib import Path

_LAUNCHER = Path(__file__).resolve().parent / "vizdoom-owned"
_init_lock = threading.Lock()
# Seconds a game's call may take before its engine is killed (a step takes about a millisecond). Not less:
# CI's starved machine stalled every process for 10-20 s at a time, and each needless kill risks the wedge above.
ENGINE_TIMEOUT = 60.0
WEDGED_AFTER = 3.0  # seconds past a call's deadline (the engine killed at it) before the call counts as stuck


def owned_engine_path() -> str | None:
    """The launcher to hand to ``DoomGame.set_vizdoom_path``, with its settings put in the environment the
    engine inherits; None where the parent-death signal does not exist (not Linux) or the launcher is missing."""
    if not sys.platform.startswith("linux"):
        return None
    if _LAUNCHER.is_file() and not os.access(_LAUNCHER, os.X_OK):
        try:  # unpacked from an archive that dropped its mode (Ray ships the package to a cluster's nodes so)
            _LAUNCHER.chmod(0o755)
        except OSError:
            pass
    if not os.access(_LAUNCHER, os.X_OK):
        return None
    import vizdoom

    os.environ["DOOM_A3C_PYTHON"] = sys.executable
    os.environ["DOOM_A3C_VIZDOOM"] = str(Path(vizdoom.__file__).resolve().parent / "vizdoom")
    os.environ["DOOM_A3C_ENGINE_OWNER"] = str(os.getpid())
    return str(_LAUNCHER)


def child_pids() -> set[int]:
    """The pids of this process's children (of all its threads)."""
    pids: set[int] = set()
    files = glob.glob(f"/proc/{os.getpid()}/task/*/children")
    for name in files:
        try:
            pids.update(int(p) for p in Path(name).read_text().split())
        except OSError:
            pass
    if files:
        return pids
    for entry in glob.glob("/proc/[0-9]*/stat"):  # kernels without /proc/.../children
        try:
            if int(Path(entry).read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                pids.add(int(entry.split("/")[2]))
        except (OSError, IndexError, ValueError):
            pass
    return pids


def start_engine(game) -> int | None:
    """``game.init()``, returning the pid of the engine process it started (None if it cannot be told)."""
    if not sys.platform.startswith("linux"):
        game.init()
        return None
    with _init_lock:  # games started from two threads at once would blur whose child is whose
        before = child_pids()
        game.init()
        new = child_pids() - before
    return new.pop() if len(new) == 1 else None


def kill_engine(pid: int | None) -> None:
    """SIGKILL one engine process; a stopped (SIGSTOP) process dies too."""
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class CallTimer:
    """Marks a blocking engine call as started and finished; the watchdog kills the engine of a call that
    runs past ``timeout`` seconds. Costs two attribute writes per call on the hot path."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.deadline = 0.0  # 0: no call in progress
        self.pid: int | None = None
        self.expired = False
        self.wedged = False
        if timeout > 0:
            _watchdog().watch(self)

    def start(self) -> None:
        """A call begins now."""
        self.deadline = time.monotonic() + self.timeout

    def stop(self) -> None:
        """The call returned or raised."""
        self.deadline = 0.0


class _Watchdog:
    """One daemon thread per process, checking twice a second every live CallTimer."""

    def __init__(self) -> None:
        self._timers: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="doom-engine-watchdog", daemon=True).start()

    def watch(self, timer: CallTimer) -> None:
        with self._lock:
            self._timers.add(timer)

    def _run(self) -> None:
        while True:
            time.sleep(0.5)
            with self._lock:
                timers = list(self._timers)
            now = time.monotonic()
            for timer in timers:
                deadline = timer.deadline
                if not deadline or timer.pid is None or now <= deadline:
                    continue
                if not timer.expired:
                    timer.expired = True
                    kill_engine(timer.pid)
                elif now > deadline + WEDGED_AFTER and not timer.wedged:  # killed, and still no answer
                    timer.wedged = True
                    _on_wedged(f"game engine {timer.pid} died holding ViZDoom's message-queue lock; its call "
                               f"could never return (a ViZDoom limitation)")


def _exit_wedged(message: str) -> None:
    """The default: say why on stderr and end the process (a stuck call would hold it forever)."""
    sys.stderr.write(f"doom_a3c: {message}; ending this process\n")
    sys.stderr.flush()
    os._exit(1)


_on_wedged = _exit_wedged


def on_wedged(handler) -> None:
    """Call ``handler(message)`` from the watchdog thread, instead of ending the process at once, when a
    game's call is stuck for good (see the module's docstring); the handler should end the process."""
    global _on_wedged
    _on_wedged = handler


_WATCHDOG: _Watchdog | None = None
_WATCHDOG_LOCK = threading.Lock()


def _watchdog() -> _Watchdog:
    global _WATCHDOG
    with _WATCHDOG_LOCK:
        if _WATCHDOG is None:
            _WATCHDOG = _Watchdog()
        return _WATCHDOG
