"""Becomes the ViZDoom engine after asking the kernel to kill it when its owner dies.

ViZDoom starts its engine as a child process of whoever created the game, and nothing stops that child
when its owner is killed (``kill -9`` of a worker or of the trainer left engines running forever).
``prctl(PR_SET_PDEATHSIG, SIGKILL)`` survives ``exec``, so the engine this becomes is killed by the kernel
the moment its owner dies, however it dies. Runs with ``python -I -S``: the standard library only.
"""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main() -> None:
    """Set the parent-death signal, check the owner is still there, then exec the real engine."""
    engine = os.environ["DOOM_A3C_VIZDOOM"]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        sys.exit(f"engine_launcher: prctl failed (errno {ctypes.get_errno()})")
    owner = os.environ.get("DOOM_A3C_ENGINE_OWNER")
    if owner and os.getppid() != int(owner):
        sys.exit(0)  # the owner died before the signal was set: nobody is left to play this game
    os.execv(engine, [engine, *sys.argv[1:]])


if __name__ == "__main__":
    main()
