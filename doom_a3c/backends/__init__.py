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

from pathlib import Path

import torch


class WorkersFailing(RuntimeError):
    """Workers died more often than ``max_worker_restarts`` in ten minutes, or (Ray) the parameter server
    was lost."""


class ClusterError(ValueError):
    """A --ray address that cannot be reached, or a cluster too small for --workers: found before training."""


class OptimizerStateError(ValueError):
    """A resumed optimizer state that does not fit the model."""


def make_backend(cfg, spec, model, optimizer_state: dict | None, frames: int, error_log: Path):
    """The backend ``cfg.ray`` asks for: local processes without it (Ray is not even imported)."""
    if cfg.ray:
        from doom_a3c.backends.ray_cluster import RayWorkers

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
