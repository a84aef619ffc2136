"""Workers as local processes sharing the model and Adam state in shared memory (A3C as published).

The pool starts the workers, hands their messages to the supervisor, and keeps them running: a worker
that dies (an error, ``kill -9``) or stops making progress is cleaned up, its games included, and
started again on the shared weights; too many deaths in ten minutes end training instead of looping.
"""

from __future__ import annotations

import contextlib
import copy
import os
import queue
import signal
import time
from pathlib import Path

import torch.multiprocessing as mp

from doom_a3c.config import TrainConfig
from doom_a3c.envs import EnvSpec
from doom_a3c.messages import WorkerFailed, WorkerRestarted
from doom_a3c.model import ActorCritic
from doom_a3c.shared_optim import SharedAdam
from doom_a3c.worker import budget_spent, make_shared_handles, worker_main
from doom_a3c.backends import RestartBudget, load_optimizer_state, stall_limit

LOCK_WAIT = 5.0  # an optimizer step holds the update lock for milliseconds; this long means its holder died


class LocalWorkers:
    """``cfg.workers`` worker processes on this machine, supervised."""

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, model: ActorCritic, optimizer_state: dict | None = None,
                 frames: int = 0, error_log: Path | None = None):
        """``model`` moves to shared memory and is trained in place; ``optimizer_state`` (a resumed Adam
        state) must fit it, or ValueError. Nothing starts before ``start()``."""
        self.cfg, self.spec, self.error_log = cfg, spec, error_log
        self.ctx = mp.get_context("spawn")
        model.share_memory()
        optimizer = SharedAdam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        load_optimizer_state(optimizer, optimizer_state, cfg.lr)
        self.model, self.optimizer = model, optimizer
        self.handles = make_shared_handles(model, cfg, optimizer, frames=[frames], ctx=self.ctx)
        self.processes: list = [None] * cfg.workers
        self.budget = RestartBudget(cfg.max_worker_restarts, error_log)
        self._progress = [(0, 0.0)] * cfg.workers  # (frames, when they last changed) per slot
        self._started = [False] * cfg.workers  # whether the slot's current process has finished a rollout
        self._errors: dict[int, str] = {}

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every worker."""
        for rank in range(self.cfg.workers):
            self._spawn(rank)

    def _spawn(self, rank: int) -> None:
        process = self.ctx.Process(target=worker_main, args=(rank, self.cfg, self.spec, self.handles),
                                   name=f"a3c-worker-{rank}", daemon=True)
        process.start()
        self.processes[rank] = process
        self._progress[rank] = (self.handles.frames[rank], time.monotonic())
        self._started[rank] = False

    def stop(self, grace: float = 30.0) -> list:
        """Ask every worker to finish its rollout and close its games; kill the ones that do not within
        ``grace`` seconds. Returns the messages they sent meanwhile."""
        self.handles.stop.set()
        messages: list = []
        deadline = time.monotonic() + grace
        while any(p.is_alive() for p in self.processes) and time.monotonic() < deadline:
            messages.extend(self._drain(0.1))  # keep the queues flowing so no worker blocks on a full pipe
        for process in self.processes:
            _kill_worker(process)
            process.join(timeout=5)
        messages.extend(self._drain(0.0))
        return messages

    # -- messages and health ------------------------------------------------------------------------
    def poll(self, block_seconds: float) -> list:
        """Messages from the workers for up to ``block_seconds``; dead or stalled workers are replaced, each
        replacement reported as a WorkerRestarted. Raises WorkersFailing when they keep dying."""
        messages = self._drain(block_seconds)
        now = time.monotonic()
        idle = budget_spent(self.cfg, self.total_frames())  # workers wait for the stop: not stalled
        for rank, process in enumerate(self.processes):
            frames = self.handles.frames[rank]
            if frames != self._progress[rank][0]:
                self._progress[rank] = (frames, now)
                self._started[rank] = True
            if process.is_alive():
                limit = stall_limit(self.cfg.worker_timeout, self._started[rank])
                if not idle and now - self._progress[rank][1] > limit:
                    self._errors[rank] = f"no rollout finished for {limit:g} s"
                    _kill_worker(process)
                continue
            messages.extend(self._drain_one(rank))  # its last words: the WorkerFailed traceback, if any
            messages.append(self._restart(rank, process))
        return messages

    def _restart(self, rank: int, process) -> WorkerRestarted:
        reason = self._errors.pop(rank, None) or _exit_reason(process.exitcode)
        _kill_worker(process)  # anything left in its process group
        self._recover_lock()
        # The others may have waited on the lock it held (a worker stopped in its optimizer step): their
        # clocks start again from here, or one stalled worker would take the others down with it.
        now = time.monotonic()
        self._progress = [(frames, now) for frames, _ in self._progress]
        count = self.budget.spend(rank, reason)
        self.handles.queues[rank] = self.ctx.Queue()  # a fresh channel: the old one may hold a torn message
        self._spawn(rank)
        return WorkerRestarted(rank, reason, count)

    def _drain(self, block_seconds: float) -> list:
        deadline = time.monotonic() + block_seconds
        messages: list = []
        while True:
            before = len(messages)
            for rank in range(len(self.processes)):
                messages.extend(self._drain_one(rank, limit=1000))
            if time.monotonic() >= deadline:
                return messages
            if len(messages) == before:
                time.sleep(0.01)

    def _drain_one(self, rank: int, limit: int = 100_000) -> list:
        messages = []
        channel = self.handles.queues[rank]
        for _ in range(limit):
            try:
                message = channel.get_nowait()
            except (queue.Empty, EOFError, OSError):
                break
            if isinstance(message, WorkerFailed):
                self._errors[rank] = message.error.strip().splitlines()[-1]
                self.budget.log(message.rank, message.error)
            messages.append(message)
        return messages

    # -- the update lock ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def update_lock(self):
        """Hold the lock the workers take for each optimizer step (for a consistent snapshot)."""
        lock = self.handles.update_lock
        if not lock.acquire(timeout=LOCK_WAIT):
            lock.release()  # a worker died holding it (kill -9 during its step)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _recover_lock(self) -> None:
        """A worker killed during its optimizer step never released the lock: release it for it."""
        with self.update_lock():
            pass

    def snapshot(self) -> tuple[dict, dict]:
        """The weights and the Adam state as one consistent copy: taken under the update lock, so that no
        worker's step lands half-way through it."""
        with self.update_lock():
            weights = {k: v.clone() for k, v in self.model.state_dict().items()}
            optimizer_state = copy.deepcopy(self.optimizer.state_dict())
        return weights, optimizer_state

    # -- counters -----------------------------------------------------------------------------------
    def total_frames(self) -> int:
        """Frames trained on so far, all workers together."""
        return self.handles.total_frames()

    def close(self) -> None:
        """Nothing left to release once stopped (the Ray backend disconnects here)."""

    def pids(self) -> list[int]:
        """The worker processes' pids."""
        return [p.pid for p in self.processes if p is not None and p.pid is not None]


def _kill_worker(process) -> None:
    """SIGKILL a worker and its process group (its games die with it anyway: see envs/engine.py)."""
    if process is None or process.pid is None:
        return
    if process.is_alive():
        process.kill()
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the worker leads its own group (worker_main)
    except (ProcessLookupError, PermissionError):
        pass


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"
