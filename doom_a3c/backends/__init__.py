"""Where the workers run. The supervisor talks to any backend through the same few calls:

- ``start()``, then ``poll(block_seconds)`` for the workers' messages (records of ``messages.py``, plus a
  ``WorkerRestarted`` for each worker it had to start again; ``WorkersFailing`` when they keep dying);
- ``total_frames()``: frames trained on so far; ``snapshot()``: the weights and Adam state, consistent;
- ``stop(grace)``: workers stopped, everything they started gone; returns their last messages;
- ``pids()``: this machine's worker processes (the benchmark measures their memory).

``local``: processes of this machine sharing the model and Adam in shared memory (A3C as published);
``ray_cluster``: Ray actors, on this machine or a cluster, around a parameter-server actor (``--ray``).
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import torch

RESTART_WINDOW = 600.0  # seconds over which worker deaths are counted
# Seconds a new worker may take to finish its first rollout (importing torch, starting its games) before it
# counts as stalled; --worker-timeout applies from then on. A hang catcher: on two cores that another
# training keeps busy, a new process took minutes to start, and a slow start is not a stall.
STARTUP_GRACE = 600.0


def stall_limit(worker_timeout: float, started: bool) -> float:
    """Seconds without a finished rollout after which a worker is killed and replaced."""
    return worker_timeout if started else max(worker_timeout, STARTUP_GRACE)


class WorkersFailing(RuntimeError):
    """Workers died more often than ``max_worker_restarts`` in ten minutes, or (Ray) the parameter server
    was lost."""


# What to install for --ray: Ray itself (a checkout's requirements.txt pins it; an install's [ray] extra).
RAY_MISSING = "--ray needs Ray, which is not installed: pip install 'ray>=2.60,<3' (or pip install -r requirements.txt)"


class ClusterError(ValueError):
    """A --ray address that cannot be reached, or a cluster too small for --workers: found before training."""


class OptimizerStateError(ValueError):
    """A resumed optimizer state that does not fit the model."""


def make_backend(cfg, spec, model, optimizer_state: dict | None, frames: int, error_log: Path):
    """The backend ``cfg.ray`` asks for: local processes without it (Ray is not even imported)."""
    if cfg.ray:
        try:
            from doom_a3c.backends.ray_cluster import RayWorkers
        except ModuleNotFoundError as err:
            if err.name != "ray":
                raise
            raise ClusterError(RAY_MISSING) from err

        return RayWorkers(cfg, spec, model, optimizer_state, frames=frames, error_log=error_log)
    from doom_a3c.backends.local import LocalWorkers

    return LocalWorkers(cfg, spec, model, optimizer_state, frames=frames, error_log=error_log)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict | None, lr: float) -> None:
    """Load a resumed Adam state into ``optimizer``, keeping ``lr`` (the command line's rate wins).
    Raises OptimizerStateError when the state does not fit the model."""
    if state is None:
        return
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError) as err:
        raise OptimizerStateError(f"optimizer state does not fit ({err})") from err
    for group in optimizer.param_groups:
        group["lr"] = lr


class RestartBudget:
    """Worker deaths in the last ten minutes: one more than ``limit`` (``--max-worker-restarts``) ends
    training instead of restarting in a loop. Each death's traceback goes to ``error_log``."""

    def __init__(self, limit: int, error_log: Path | None):
        self.limit, self.error_log = limit, error_log
        self.deaths: collections.deque = collections.deque()
        self.restarts = 0

    def log(self, rank: int, error: str) -> None:
        if self.error_log is None:
            return
        try:
            with open(self.error_log, "a") as log:
                log.write(f"--- worker {rank}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n{error}\n")
        except OSError:
            pass

    def spend(self, rank: int, reason: str) -> int:
        """Count a death; raises WorkersFailing past the limit, else returns the restarts so far (this one's
        included)."""
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths and self.deaths[0] < now - RESTART_WINDOW:
            self.deaths.popleft()
        if len(self.deaths) > self.limit:
            raise WorkersFailing(f"workers died {len(self.deaths)} times in {RESTART_WINDOW / 60:.0f} minutes "
                                 f"(more than --max-worker-restarts {self.limit}); the last: worker {rank}, {reason}")
        self.restarts += 1
        return self.restarts
