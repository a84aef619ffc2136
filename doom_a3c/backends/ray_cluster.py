"""Workers as Ray actors around a parameter-server actor: the same A3C on one machine or on a cluster.

Each worker actor owns its games and a local model, collects a rollout, computes the gradients and sends
them to the parameter server, which holds the model and the Adam state and applies updates one at a time
as they arrive (no all-reduce: that would be A2C); the worker gets the fresh weights back with each
update. The supervisor keeps one ``run_for`` call in flight per worker; each returns the worker's
messages of about a second. A worker whose actor dies (its node lost, ``kill -9``) is started again
wherever Ray finds a CPU; losing the parameter server (it lives on the driver's machine) ends the run.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import ray
import torch
from ray.exceptions import GetTimeoutError, RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from torch.nn.utils import parameters_to_vector

import doom_a3c
from doom_a3c.affinity import pin_to_free_core
from doom_a3c.backends import ClusterError, RestartBudget, WorkersFailing, load_optimizer_state, stall_limit
from doom_a3c.config import TrainConfig
from doom_a3c.envs import EnvSpec
from doom_a3c.messages import UpdateDone, WorkerRestarted
from doom_a3c.model import ActorCritic
from doom_a3c.worker import Worker, scheduled_lr

SLICE = 1.0  # seconds of rollouts per run_for call: how often a worker's messages reach the supervisor
# run_for calls queued per worker: the next one waits at the actor while the current one runs, so a worker
# never idles between the end of a call and the supervisor's next look (with one, they idled ~30%)
QUEUED = 2
CONNECT_TIMEOUT = 10.0  # seconds to wait for a cluster's address to answer
SERVER_TIMEOUT = 60.0  # seconds a parameter-server call may take before the server counts as lost
# Seconds the parameter server may take to start: a hang catcher, not a speed bound. On a machine whose cores
# are all busy (another training), a new Ray process may take minutes to import torch; a server that dies
# while starting fails the run at once, with its reason.
SERVER_START_TIMEOUT = 900.0
OBJECT_STORE_BYTES = 100 * 1024**2  # --ray local: gradients and weights are a few MB; Ray's default is 30% of RAM
# --ray local: gradients and weights (a few MB) go straight between the processes instead of through the
# object store (Ray's threshold is 100 kB); measured 7% more frames/s on two cores.
DIRECT_CALL_BYTES = 16 * 1024**2


# -- connecting ---------------------------------------------------------------------------------------------
def connect(address: str, workers: int) -> None:
    """Start a private Ray instance (``local``, watched by reaper.py) or join a running cluster. Raises
    ClusterError with one readable line.

    ``ray.init`` replaces the SIGTERM handler with one that exits on the spot; the trainer's own (stop the
    workers, save a checkpoint, say so) is put back."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _connect(address, workers)
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)


def _connect(address: str, workers: int) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a training run
    package_root = str(Path(doom_a3c.__file__).resolve().parent.parent)
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                   configure_logging=True)
    if address == "local":
        _start_reaper()
        # The workers run from this checkout (same machine): no package upload needed. address="local": a new
        # instance even where RAY_ADDRESS or a stale /tmp/ray/ray_current_cluster (a `ray start` or a test
        # cluster killed before it cleaned up) names another; without it ray.init tries to join that one.
        ray.init(address="local", num_cpus=max(os.cpu_count() or 1, workers), object_store_memory=OBJECT_STORE_BYTES,
                 runtime_env={"env_vars": {"PYTHONPATH": package_root}},
                 _system_config={"max_direct_call_object_size": DIRECT_CALL_BYTES}, **options)
        return
    if address != "auto":
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
        except OSError as err:
            raise ClusterError(f"--ray {address}: no Ray cluster answers there ({err.strerror or err}); start one "
                               f"with `ray start --head` or give its address") from err
    try:
        # The package travels to every node with the job; each node needs the requirements installed.
        with _native_stderr_held() as held:
            ray.init(address=address, runtime_env={"py_modules": [str(Path(doom_a3c.__file__).resolve().parent)],
                                                   # the workers need neither the shipped models nor caches
                                                   "excludes": ["pretrained_models/", "__pycache__/"]},
                     **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        reason = str(err).splitlines()[0]
        if "InvalidAuthToken" in held.text:
            # Ray sends a token to an explicit address only with RAY_AUTH_MODE=token (for `auto` it turns that
            # on itself where it finds one).
            reason = ("the cluster uses token authentication and refused this driver's token"
                      + ("" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else
                         ": set RAY_AUTH_MODE=token, with the head's ~/.ray/auth_token here or RAY_AUTH_TOKEN"))
        raise ClusterError(f"--ray {address}: could not join a Ray cluster ({reason})") from err
    held.release()


class _native_stderr_held:
    """Hold what Ray's C++ client writes to stderr while it joins a cluster (a warning a second for each try a
    cluster refuses, for half a minute): released as it was once joined; on a failure, read for the reason
    and dropped, so the trainer's one line says what went wrong."""

    def __enter__(self):
        import tempfile

        sys.stderr.flush()
        self._file = tempfile.TemporaryFile(mode="w+b")
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode(errors="replace")
        self._file.close()

    def release(self) -> None:
        """Pass on what was held (the join succeeded: whatever Ray said belongs on stderr)."""
        if self.text:
            sys.stderr.write(self.text)
            sys.stderr.flush()


_reaper: dict = {}


def disconnect() -> None:
    """Leave Ray (shutting down the private instance ``connect("local", ...)`` started, and its reaper)."""
    if ray.is_initialized():
        ray.shutdown()
    _stop_reaper()


def _start_reaper() -> None:
    """reaper.py, watching this process through a pipe only this process holds: whatever way the run
    ends, it ends the Ray processes that would outlive it (see reaper.py)."""
    read, write = os.pipe()  # not inherited by the processes Ray starts (close-on-exec)
    script = Path(__file__).with_name("reaper.py")
    process = subprocess.Popen([sys.executable, "-I", "-S", str(script), str(os.getpid())], stdin=read,
                               start_new_session=True)
    os.close(read)
    _reaper.update(process=process, pipe=write)


def _stop_reaper() -> None:
    """After a clean shutdown: the reaper checks that nothing is left and exits."""
    if _reaper:
        os.close(_reaper["pipe"])
        try:
            _reaper["process"].wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        _reaper.clear()


def _check_cpus(workers: int) -> None:
    cpus = int(ray.cluster_resources().get("CPU", 0))
    if workers > cpus:
        raise ClusterError(f"--workers {workers} needs {workers} CPUs and the Ray cluster has {cpus}: add nodes "
                           f"(`ray start --address HEAD:6379`) or ask for fewer workers")


# -- the actors ---------------------------------------------------------------------------------------------
@ray.remote(num_cpus=0)
class ParameterServer:
    """The model and its Adam state; applies each worker's gradients as they arrive, one at a time."""

    def __init__(self, model_kwargs: dict, weights: dict, optimizer_state: dict | None, cfg: TrainConfig,
                 frames: int):
        torch.set_num_threads(1)
        self.cfg, self.frames = cfg, frames
        self.model = ActorCritic(**model_kwargs)
        self.model.load_state_dict(weights)
        self.params = list(self.model.parameters())
        # The same update as the local backend's SharedAdam (plain Adam, single-tensor implementation).
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, eps=cfg.adam_eps, foreach=False)
        load_optimizer_state(self.optimizer, optimizer_state, cfg.lr)

    def apply(self, grads: torch.Tensor, has_grad: list[bool], frames: int) -> tuple[torch.Tensor, float | None]:
        """One Adam step with ``grads``, the gradients of the parameters marked in ``has_grad``, flattened
        into one vector (one buffer to send, not one per tensor); the others are left alone. ``frames``:
        what the sender trained on since its last update (the learning-rate schedule counts them).
        Returns the new weights, flattened likewise, the learning rate used where it decays, and the frames
        trained on so far, all workers together (a worker starts no rollout once they spend the budget)."""
        lr = scheduled_lr(self.cfg, self.frames)
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        offset = 0
        for param, present in zip(self.params, has_grad):
            param.grad = None
            if present:
                param.grad = grads[offset : offset + param.numel()].view_as(param)
                offset += param.numel()
        self.optimizer.step()
        self.frames += frames
        return self.weights(), lr, self.frames

    def weights(self) -> torch.Tensor:
        return parameters_to_vector(self.params).detach()

    def start_from(self) -> tuple[torch.Tensor, int]:
        """What a new worker starts from: the weights and the frames trained on so far."""
        return self.weights(), self.frames

    def snapshot(self) -> tuple[dict, dict]:
        return ({k: v.clone() for k, v in self.model.state_dict().items()}, self.optimizer.state_dict())

    def where(self) -> tuple[str, int]:
        return ray.get_runtime_context().get_node_id(), os.getpid()


@ray.remote(num_cpus=0)
class GradientSender:
    """For ``scripts/benchmark.py --parameter-server``: stands in for a worker that needs no time to compute
    its gradients. Sends one synthetic update after another to the server, one in flight at a time, as a
    worker does, with the gradient vector of the server's model and its rollout's frame count."""

    def __init__(self, numel: int, frames: int, seed: int):
        self.grads = torch.randn(numel, generator=torch.Generator().manual_seed(seed)) * 1e-3
        self.frames = frames

    def run(self, server, has_grad: list[bool], seconds: float, warmup: float) -> int:
        """Updates answered over ``seconds`` after ``warmup``."""
        deadline = time.monotonic() + warmup
        while time.monotonic() < deadline:
            ray.get(server.apply.remote(self.grads, has_grad, self.frames))
        count, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            ray.get(server.apply.remote(self.grads, has_grad, self.frames))
            count += 1
        return count


def measure_parameter_server(model: ActorCritic, cfg: TrainConfig, frames_per_update: int, senders: int,
                             seconds: float, warmup: float) -> float:
    """Updates per second one ``ParameterServer`` (on this machine, in the Ray instance already connected)
    applies for ``model`` while ``senders`` synthetic workers keep it busy."""
    server = ParameterServer.remote(model.model_kwargs(), model.state_dict(), None, cfg, 0)
    has_grad = [True] * len(list(model.parameters()))
    numel = sum(p.numel() for p in model.parameters())
    actors = [GradientSender.remote(numel, frames_per_update, seed) for seed in range(senders)]
    try:
        counts = ray.get([a.run.remote(server, has_grad, seconds, warmup) for a in actors])
    finally:
        for actor in [*actors, server]:
            ray.kill(actor)
    return sum(counts) / seconds


class _Outbox(list):
    """What a worker would put on its queue, kept until the supervisor's call returns it."""

    def put(self, message) -> None:
        self.append(message)


class RemoteHandles:
    """What a Worker needs from "the shared model", served by the parameter server: a worker sends its
    gradients at the end of a rollout and starts the next from the weights the server sends back.

    Measured on basic, two cores: letting the next rollout start from older weights while the reply is
    under way (never waiting for the server) ran at 0.87 of the local processes' frame rate instead of
    about 0.7 (both before workers were pinned to cores, affinity.py), but needed 3.7-4.0M frames to the
    target instead of 1.5M (2.1M locally): the stale gradients cost more than the waiting.
    """

    def __init__(self, server, model_kwargs: dict, weights: torch.Tensor, frames: int = 0):
        self.server, self._kwargs = server, model_kwargs
        self.latest, self.lr = weights, None
        self.server_frames = frames  # all workers' frames as of the server's last reply read
        self.sent_frames = 0  # this worker's frames sent with the update whose reply is not read yet
        self.pending_frames = 0  # counted, not sent yet
        self.reply = None  # the server's answer to the last update sent, not yet picked up
        self.outbox = _Outbox()

    def model_kwargs(self) -> dict:
        return self._kwargs

    def queue(self, rank: int) -> _Outbox:
        return self.outbox

    def _read_reply(self) -> None:
        """The server's answer to the last update sent, once (the next rollout needs it anyway)."""
        if self.reply is not None:
            self.latest, self.lr, self.server_frames = ray.get(self.reply)
            self.reply, self.sent_frames = None, 0

    def pull(self, params: list[torch.Tensor]) -> None:
        self._read_reply()
        with torch.no_grad():
            offset = 0
            for param in params:
                param.copy_(self.latest[offset : offset + param.numel()].view_as(param))
                offset += param.numel()

    def push(self, params: list[torch.nn.Parameter], cfg: TrainConfig) -> float | None:
        with_grad = [p.grad is not None for p in params]
        grads = torch.cat([p.grad.reshape(-1) for p in params if p.grad is not None])
        self.reply = self.server.apply.remote(grads, with_grad, self.pending_frames)
        self.sent_frames, self.pending_frames = self.pending_frames, 0
        return self.lr

    def add_frames(self, rank: int, frames: int) -> None:
        self.pending_frames += frames

    def total_frames(self) -> int:
        """What the server counted at its last reply, with this worker's frames it had not counted then."""
        self._read_reply()
        return self.server_frames + self.sent_frames + self.pending_frames


@ray.remote(num_cpus=1)
class RayWorker:
    """One A3C worker: its games, its local model, rollouts and updates through the parameter server."""

    def __init__(self, rank: int, cfg: TrainConfig, spec: EnvSpec, model_kwargs: dict, server):
        torch.set_num_threads(1)
        if cfg.cpu_affinity:
            pin_to_free_core(rank)  # before the games start: they inherit it
        self.handles = RemoteHandles(server, model_kwargs, *ray.get(server.start_from.remote()))
        self.worker = Worker(rank, cfg, spec.on_this_machine(), self.handles)  # its game files written here

    def run_for(self, seconds: float) -> tuple[list, int]:
        """Rollouts and updates for about ``seconds`` (one at least, none once the frame budget is spent);
        returns their messages and the frames trained on by all workers together as far as this one knows."""
        deadline = time.monotonic() + seconds
        if self.worker.budget_spent():
            time.sleep(seconds)  # waiting for the supervisor to stop the run
        else:
            self.worker.step()
            while time.monotonic() < deadline and not self.worker.budget_spent():
                self.worker.step()
        messages = list(self.handles.outbox)
        self.handles.outbox.clear()
        return messages, self.handles.total_frames()

    def close(self) -> None:
        self.worker.close()

    def where(self) -> tuple[str, int]:
        return ray.get_runtime_context().get_node_id(), os.getpid()


def await_server(server, address: str, timeout: float = SERVER_START_TIMEOUT) -> None:
    """Return once ``server`` (a ParameterServer actor just created) answers; ClusterError at once if it
    dies while starting (its reason in one line), or if it has not answered after ``timeout`` seconds."""
    ref, patience = server.where.remote(), min(30.0, timeout)
    try:
        try:
            ray.get(ref, timeout=patience)
        except GetTimeoutError:
            print(f"--ray {address}: the parameter server has not started after {patience:g} s (are all the "
                  f"driver's cores busy?); waiting for it up to {timeout:g} s", file=sys.stderr, flush=True)
            ray.get(ref, timeout=timeout - patience)
    except GetTimeoutError as err:
        raise ClusterError(f"--ray {address}: the parameter server did not start within {timeout:g} s") from err
    except RayError as err:  # nothing trained yet: a cluster that cannot run the server
        last = (str(err).strip().splitlines() or [type(err).__name__])[-1].strip()
        raise ClusterError(f"--ray {address}: the parameter server failed to start ({last})") from err


# -- the backend ----------------------------------------------------------------------------------------------
class RayWorkers:
    """``cfg.workers`` worker actors and a parameter server on a Ray cluster (``cfg.ray``), supervised."""

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, model: ActorCritic, optimizer_state: dict | None = None,
                 frames: int = 0, error_log: Path | None = None):
        # The spec carries its game files to the workers: a node may share no files with this machine.
        self.cfg, self.spec, self.error_log = cfg, spec.carried(), error_log
        self.model_kwargs = model.model_kwargs()
        # A resumed Adam state that does not fit is bad input: found here, before Ray starts anything.
        load_optimizer_state(torch.optim.Adam(model.parameters(), lr=cfg.lr, foreach=False), optimizer_state, cfg.lr)
        connect(cfg.ray, cfg.workers)
        try:
            _check_cpus(cfg.workers)
            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
            self.server = ParameterServer.options(name="a3c-parameter-server", scheduling_strategy=here).remote(
                self.model_kwargs, model.state_dict(), optimizer_state, cfg, frames)
            await_server(self.server, cfg.ray)
        except BaseException:
            self._disconnect()
            raise
        self.frames = frames
        self.server_frames = frames  # the parameter server's count, as the workers last reported it
        self.actors: list = [None] * cfg.workers
        self.calls: dict = {}  # run_for call in flight -> (rank, the actor it was sent to)
        self.last_return = [time.monotonic()] * cfg.workers
        self.started = [False] * cfg.workers  # whether the rank's current actor has returned a call
        self.budget = RestartBudget(cfg.max_worker_restarts, error_log)

    def _call_server(self, method: str, *args):
        try:
            return ray.get(getattr(self.server, method).remote(*args), timeout=SERVER_TIMEOUT)
        except (RayActorError, GetTimeoutError) as err:
            raise WorkersFailing(f"the parameter server was lost ({type(err).__name__}), and the weights it "
                                 f"held since the last checkpoint with it") from err

    def start(self) -> None:
        for rank in range(self.cfg.workers):
            self._spawn(rank)

    def _spawn(self, rank: int, generation: int = 0) -> None:
        # Named (as `ray list actors` shows them), with the restart count: a replacement's name is new.
        self.actors[rank] = RayWorker.options(name=f"a3c-worker-{rank}.{generation}").remote(
            rank, self.cfg, self.spec, self.model_kwargs, self.server)
        self.last_return[rank] = time.monotonic()
        self.started[rank] = False
        for _ in range(QUEUED):
            self._call(rank)

    def _call(self, rank: int) -> None:
        actor = self.actors[rank]
        self.calls[actor.run_for.remote(SLICE)] = (rank, actor)

    def poll(self, block_seconds: float) -> list:
        """The messages of the calls that returned within ``block_seconds``; a worker whose call failed
        (its actor died) or never returns is started again, reported as a WorkerRestarted."""
        messages: list = []
        ready, _ = ray.wait(list(self.calls), num_returns=len(self.calls), timeout=block_seconds)
        for ref in ready:
            rank, actor = self.calls.pop(ref)
            if actor is not self.actors[rank]:
                continue  # a call queued at a worker that was already replaced
            try:
                returned = ray.get(ref)
            except RayError as err:
                messages.append(self._restart(rank, err))
                continue
            self.last_return[rank] = time.monotonic()
            self.started[rank] = True
            messages.extend(self._count(returned))
            self._call(rank)
        now = time.monotonic()
        for rank, actor in enumerate(self.actors):
            if now - self.last_return[rank] > stall_limit(self.cfg.worker_timeout, self.started[rank]):
                ray.kill(actor, no_restart=True)  # its calls fail at the next poll
                self.last_return[rank] = now
        return messages

    def _restart(self, rank: int, err: Exception) -> WorkerRestarted:
        self._call_server("where")  # a worker that died because the server did: end the run instead
        reason = str(err).strip().splitlines()[-1].strip() if str(err).strip() else type(err).__name__
        self.budget.log(rank, str(err))
        count = self.budget.spend(rank, reason)
        ray.kill(self.actors[rank], no_restart=True)
        self._spawn(rank, generation=count)
        return WorkerRestarted(rank, reason, count)

    def stop(self, grace: float = 30.0) -> list:
        """Let the calls in flight return (their messages are kept), close every worker's games, end the
        actors and, where this run started Ray, Ray itself."""
        messages: list = []
        deadline = time.monotonic() + grace
        while self.calls and time.monotonic() < deadline:
            ready, _ = ray.wait(list(self.calls), num_returns=len(self.calls), timeout=0.25)
            for ref in ready:
                rank, actor = self.calls.pop(ref)
                if actor is not self.actors[rank]:
                    continue
                try:
                    returned = ray.get(ref)
                except RayError:
                    continue
                messages.extend(self._count(returned))
        closing = [actor.close.remote() for actor in self.actors if actor is not None]
        try:
            ray.wait(closing, num_returns=len(closing), timeout=max(deadline - time.monotonic(), 5.0))
        except RayError:
            pass
        for actor in self.actors:
            if actor is not None:
                ray.kill(actor, no_restart=True)
        return messages

    def _count(self, returned: tuple[list, int]) -> list:
        """A run_for call's messages, its frames counted."""
        messages, known = returned
        self.frames += sum(m.frames for m in messages if isinstance(m, UpdateDone))
        self.server_frames = max(self.server_frames, known)
        return messages

    def total_frames(self) -> int:
        """Frames trained on: the parameter server's count where it is ahead of the messages received (a
        worker lost with its node took the messages of the updates it had sent), so that the supervisor
        and the workers judge the frame budget on one count."""
        return max(self.frames, self.server_frames)

    def snapshot(self) -> tuple[dict, dict]:
        """The parameter server's weights and Adam state (one call: its updates come one at a time)."""
        return self._call_server("snapshot")

    def pids(self) -> list[int]:
        """The worker and server processes on this machine."""
        here = ray.get_runtime_context().get_node_id()
        pids = []
        for actor in [a for a in self.actors if a is not None] + [self.server]:
            try:
                node, pid = ray.get(actor.where.remote(), timeout=10)
            except RayError:
                continue
            if node == here:
                pids.append(pid)
        return pids

    def close(self) -> None:
        """Disconnect from Ray (shutting down the instance this run started)."""
        self._disconnect()

    def _disconnect(self) -> None:
        if ray.is_initialized():
            ray.shutdown()
        _stop_reaper()
