"""One A3C training worker: its own games and local model, updating the shared model asynchronously."""

from __future__ import annotations

import ctypes
import functools
import math
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

from doom_a3c.acting import make_actor
from doom_a3c.affinity import pin_to_free_core
from doom_a3c.config import TrainConfig
from doom_a3c.envs import EngineError, EnvSpec, make_env
from doom_a3c.envs.engine import on_wedged
from doom_a3c.messages import EnvRestarted, EpisodeDone, UpdateDone, WorkerFailed
from doom_a3c.model import ActorCritic
from doom_a3c.returns import (ReturnNormalizer, estimate_advantages, normalize_advantages, policy_gradient_loss,
                              uses_critic)
from doom_a3c.shared_optim import AdamUpdate, SharedAdam

GAME_START_TRIES = 3  # a game that cannot be started this many times in a row ends the worker


@dataclass
class SharedHandles:
    """What the supervisor shares with every worker: the model, its optimizer and the channels back.
    Workers pull the weights from it and push their gradients to it (the Ray backend's handles do the same
    through a parameter server).

    Each worker has its own frame counter slot and its own queue, so a worker killed half-way through a
    write corrupts nothing that the others or its replacement use. The one lock they share, the update
    lock, is recovered by the supervisor if a worker dies holding it.
    """

    model: ActorCritic
    optimizer: AdamUpdate  # the shared Adam's state and its step (SharedAdam.for_workers)
    update_lock: Any  # mp.Lock: one optimizer step at a time, so the shared Adam state stays consistent
    frames: Any  # mp.Array('q', workers): frames each worker slot has trained on, written by that worker only
    stop: StopFlag  # set by the supervisor to end training
    queues: list  # one mp.Queue per worker slot of EpisodeDone | UpdateDone | EnvRestarted | WorkerFailed

    def total_frames(self) -> int:
        """Frames trained on so far, all workers together."""
        return int(sum(self.frames[:]))

    def queue(self, rank: int):
        """Worker ``rank``'s queue to the supervisor."""
        return self.queues[rank]

    def model_kwargs(self) -> dict:
        """What a worker's local copy of the model is built from."""
        return self.model.model_kwargs()

    def pull(self, params: list[torch.Tensor]) -> None:
        """Copy the shared weights into a worker's local parameters."""
        with torch.no_grad():
            for local, shared in zip(params, self.model.parameters()):
                local.copy_(shared)

    def push(self, params: list[torch.nn.Parameter], cfg: TrainConfig) -> float | None:
        """Step the shared Adam with the gradients of a worker's local parameters, one worker at a time;
        returns the learning rate it used where it decays (None otherwise)."""
        lr = scheduled_lr(cfg, self.total_frames())  # None: constant; else from the shared frame count
        with self.update_lock:
            # The local gradients step the shared weights directly. Without a critic the value head has no
            # gradient (None), and Adam skips it.
            self.optimizer.step(self.model.parameters(), [p.grad for p in params], lr)
        return lr

    def add_frames(self, rank: int, frames: int) -> None:
        """Count a worker's frames in its own slot (its only writer)."""
        self.frames[rank] += frames


class StopFlag:
    """A flag in shared memory that the supervisor sets to end training and the workers poll.

    Not an ``mp.Event``: its ``is_set`` and ``wait`` take a lock shared by every process, and a worker
    killed (``kill -9``) inside one leaves that lock held -- or, inside ``wait``, leaves a sleeper that
    ``set`` waits for forever -- so the supervisor's ``set`` would hang the whole run. A byte written by one
    process and read by the others needs no lock.
    """

    POLL = 0.05  # seconds between looks while waiting

    def __init__(self, ctx) -> None:
        self._flag = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._flag.value = 1

    def is_set(self) -> bool:
        return bool(self._flag.value)

    def wait(self, timeout: float) -> bool:
        """Sleep until the flag is set or ``timeout`` seconds pass; whether it is set."""
        deadline = time.monotonic() + timeout
        while not self.is_set() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(self.POLL, left))
        return self.is_set()


def scheduled_lr(cfg: TrainConfig, frames: int) -> float | None:
    """The learning rate after ``frames`` frames where it decays linearly to 0 at ``max_frames``; None
    where it is constant."""
    if not cfg.lr_decay:
        return None
    return cfg.lr * (1.0 - budget_fraction(cfg, frames))


def scheduled_entropy_beta(cfg: TrainConfig, frames: int) -> float:
    """The entropy bonus after ``frames`` frames: --entropy-beta, or, with --entropy-beta-end, the straight line
    from one to the other over ``max_frames``."""
    if math.isnan(cfg.entropy_beta_end):
        return cfg.entropy_beta
    return cfg.entropy_beta + (cfg.entropy_beta_end - cfg.entropy_beta) * budget_fraction(cfg, frames)


def budget_fraction(cfg: TrainConfig, frames: int) -> float:
    """How far ``frames`` frames are through the ``max_frames`` budget, 0 to 1: what the schedules follow."""
    return min(frames / cfg.max_frames, 1.0)


def budget_spent(cfg: TrainConfig, frames: int) -> bool:
    """Whether ``frames`` frames spend the ``max_frames`` budget (never where there is none)."""
    return bool(cfg.max_frames) and frames >= cfg.max_frames


def make_shared_handles(model: ActorCritic, cfg: TrainConfig, optimizer: SharedAdam | None = None,
                        frames: list[int] | None = None, ctx=None) -> SharedHandles:
    """Put ``model`` in shared memory and build the handles for ``cfg.workers`` workers."""
    ctx = ctx or mp.get_context("spawn")
    model.share_memory()
    optimizer = optimizer or SharedAdam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
    counts = ctx.Array("q", cfg.workers, lock=False)
    for rank, value in enumerate(frames or []):
        counts[rank] = value
    return SharedHandles(model, optimizer.for_workers(), ctx.Lock(), counts, StopFlag(ctx),
                         [ctx.Queue() for _ in range(cfg.workers)])


def worker_main(rank: int, cfg: TrainConfig, spec: EnvSpec, shared: SharedHandles) -> None:
    """Process entry point: train until ``shared.stop`` is set; report any exception with the rank."""
    _die_with_parent()
    # A process group of its own: a signal meant for the trainer's group (Ctrl-C in the terminal,
    # `timeout`, a job scheduler) reaches only the trainer, which then stops the workers in order.
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One thread per worker: several workers each using every core fight over them (DESIGN.md).
    torch.set_num_threads(1)
    if cfg.cpu_affinity:
        pin_to_free_core(rank)
    on_wedged(functools.partial(_report_wedged_game, rank, shared))
    worker = None
    try:
        worker = Worker(rank, cfg, spec, shared)
        worker.run()
    except Exception:
        shared.queue(rank).put(WorkerFailed(rank, traceback.format_exc()))
        raise
    finally:
        if worker is not None:
            worker.close()


def _report_wedged_game(rank: int, shared: SharedHandles, message: str) -> None:
    """A game's call is stuck for good (envs/engine.py): tell the trainer why, then end this worker, which
    the trainer starts again like any worker that died."""
    channel = shared.queue(rank)
    channel.put(WorkerFailed(rank, f"EngineError: {message}"))
    channel.close()
    channel.join_thread()  # the message is in the pipe before the process goes
    os._exit(1)


def _die_with_parent() -> None:
    """Ask Linux to kill this process the moment the trainer dies (even by SIGKILL); its games die with it
    (see envs/engine.py). Elsewhere the worker checks once per rollout that the trainer is alive."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if not _supervisor_alive():
            os._exit(1)  # the trainer died before the signal was set


class Worker:
    """Steps ``envs_per_worker`` games with one batched forward pass and updates after every rollout:
    ``rollout_len`` steps, or (``rollout_len`` 0) one whole episode of every game."""

    def __init__(self, rank: int, cfg: TrainConfig, spec: EnvSpec, shared: SharedHandles):
        self.rank, self.cfg, self.spec, self.shared = rank, cfg, spec, shared
        torch.manual_seed(cfg.seed + rank)
        num_envs = cfg.envs_per_worker
        self.out = shared.queue(rank)
        self.game_starts = [0] * num_envs  # games started in each slot: a replacement gets a new seed
        self.game_stages = [0] * num_envs  # the curriculum stage each slot's game plays (spec.stage)
        self.envs = [self._start_game(i) for i in range(num_envs)]
        self.model = ActorCritic(**shared.model_kwargs())
        self.head = self.model.policy
        # The acting forward pass: ONNX Runtime on the local model's own weights (acting.py), or the model.
        self.actor = make_actor(self.model, num_envs, cfg.acting)
        self.local_params = list(self.model.parameters())
        self._carry = None  # (obs, state, start): where the next rollout starts
        self.critic = uses_critic(cfg.advantage)
        self.whole_episodes = cfg.rollout_len == 0
        steps = cfg.rollout_len or self.envs[0].max_episode_steps
        if not steps:
            raise ValueError(f"--rollout-len 0 (whole episodes) needs an episode step limit, and "
                             f"{spec.name} has none: give --rollout-len N")
        self.capacity = steps
        space = self.envs[0].observation_space
        obs_dtype = torch.uint8 if space.dtype == np.uint8 else torch.float32
        # Rollout buffers, allocated once and reused: nothing on the per-step path allocates them again.
        self.obs_buf = torch.zeros((steps, num_envs, *space.shape), dtype=obs_dtype)
        self.starts = torch.zeros(steps, num_envs)  # 1 where step t is the first of an episode
        self.actions = torch.zeros((steps, num_envs, *self.model.action_shape), dtype=self.head.action_dtype)
        self.rewards = torch.zeros(steps, num_envs)
        # Values folded into a reward (a timeout's bootstrap, a lost game's cut): already in the critic's units,
        # added after --normalize-returns has scaled the games' own rewards.
        self.bootstraps = torch.zeros(steps, num_envs)
        self.normalizer = ReturnNormalizer(num_envs, cfg.gamma) if cfg.normalize_returns else None
        self.dones = torch.zeros(steps, num_envs)  # 1 where the episode ended at step t
        self.values = torch.zeros(steps, num_envs)
        self.mask = torch.ones(steps, num_envs)  # 0 where a game had already finished its episode
        # The LSTM state each step started from, as acting computed it: the update's replay then computes
        # all the steps' gates at once instead of one step after another (same weights, same numbers).
        hidden = self.model.hidden_size if self.model.lstm else 0
        self.state_in = (torch.zeros(steps, num_envs, hidden), torch.zeros(steps, num_envs, hidden))

    def sync_weights(self) -> None:
        """Copy the trained weights into the local model, once per rollout."""
        self.shared.pull(self.local_params)

    # -- games ---------------------------------------------------------------------------------------
    def _start_game(self, i: int):
        """A new game for slot ``i``, seeded ``seed + rank * envs_per_worker + i`` the first time and with a
        fresh seed for each replacement (a crash must not replay into the same state). It plays the
        curriculum stage (if the scenario declares one) of the frames trained on so far."""
        cfg = self.cfg
        seed = cfg.seed + self.rank * cfg.envs_per_worker + i + self.game_starts[i] * 1_000_003
        self.game_starts[i] += 1
        self.game_stages[i] = stage = self.spec.stage(self.shared.total_frames())
        return make_env(self.spec.at_stage(stage), seed=seed, engine_timeout=cfg.env_timeout, training=True)

    def _reset_game(self, i: int) -> np.ndarray:
        """The first observation of a new episode in slot ``i``, replacing the game if its engine fails, or
        with a game of the next curriculum stage once the frames trained on have moved past this one's (a
        game's skill level holds from its start: ViZDoom 1.2 does not apply one set on a running game)."""
        if self.spec.stage(self.shared.total_frames()) != self.game_stages[i]:
            self.envs[i].close()
            try:
                self.envs[i] = self._start_game(i)
            except Exception as err:  # vizdoom raises its own types when an engine will not start
                return self._replace_game(i, f"could not start the next curriculum stage's game ({err})")
        try:
            return self.envs[i].reset()[0]
        except EngineError as err:
            return self._replace_game(i, str(err))

    def _replace_game(self, i: int, reason: str) -> np.ndarray:
        """Close what is left of slot ``i``'s game, start a fresh one, and return its first observation."""
        self.out.put(EnvRestarted(self.rank, i, reason))
        self.envs[i].close()
        error: Exception | None = None
        for _ in range(GAME_START_TRIES):
            env = None
            try:
                env = self._start_game(i)
                obs = env.reset()[0]
            except Exception as err:  # vizdoom raises its own types when an engine will not start
                error = err
                if env is not None:
                    env.close()
                continue
            self.envs[i] = env
            return obs
        raise EngineError(f"game {i} could not be restarted after '{reason}' ({error})")

    # -- training ------------------------------------------------------------------------------------
    def run(self) -> None:
        """Collect rollouts and push updates until told to stop; idle once the frame budget is spent."""
        while not self.shared.stop.is_set() and _supervisor_alive():
            if self.budget_spent():
                self.shared.stop.wait(0.5)  # the supervisor sees the budget spent too, and stops every worker
                continue
            self.step()

    def budget_spent(self) -> bool:
        """True once ``max_frames`` frames have been trained on, all workers together as far as this worker
        knows. Checked before each rollout, so a run stops within about one rollout per worker past its
        budget whatever the machine's speed (the supervisor, busy evaluating, may look much later)."""
        return budget_spent(self.cfg, self.shared.total_frames())

    def step(self) -> None:
        """One rollout and its update, counted and reported."""
        if self._carry is None:
            obs = torch.stack([torch.as_tensor(self._reset_game(i)) for i in range(len(self.envs))])
            self._carry = (obs, self.model.initial_state(len(self.envs)), torch.ones(len(self.envs)))
        *self._carry, stats = self.train_rollout(*self._carry)
        frames = stats.pop("frames")
        stats.pop("steps")
        self.out.put(UpdateDone(self.rank, frames, stats))

    def train_rollout(self, obs: torch.Tensor, state, start: torch.Tensor):
        """One rollout and its update; returns what the next rollout starts from and the update's stats."""
        self.sync_weights()
        obs, state, start, steps = self.collect(obs, state, start)
        last_value = torch.zeros(len(self.envs))
        if self.critic and not self.whole_episodes:
            with torch.inference_mode():
                _, last_value, _ = self.actor(obs, state, start)
        frames = int(self.mask[:steps].sum()) * self.spec.frame_skip
        # Counted before the update is sent, so that a parameter server counts them with it: every worker's
        # budget check then sees the rollouts the others have sent, not only those before.
        self.shared.add_frames(self.rank, frames)
        stats = self.update(last_value.clone(), steps)
        stats["frames"], stats["steps"] = frames, steps
        return obs, state, start, stats

    def collect(self, obs: torch.Tensor, state, start: torch.Tensor):
        """Step every game, filling the rollout buffers; returns the carried-over values and the step count.

        With whole episodes, a game whose episode has ended waits (masked out, its state held at zero)
        until every game has finished its own. Per-game bookkeeping goes through NumPy views of the
        torch buffers: indexing a torch tensor from Python costs microseconds a call, paid per game per step.
        """
        gamma, head = self.cfg.gamma, self.head
        obs_np = obs.numpy()  # the next observations, written in place as the games step
        rewards, dones, mask = self.rewards.numpy(), self.dones.numpy(), self.mask.numpy()
        bootstraps = self.bootstraps.numpy()
        mask.fill(1.0)
        bootstraps.fill(0.0)
        active = np.ones(len(self.envs), dtype=bool)
        if self.whole_episodes:
            start = torch.ones(len(self.envs))  # every game starts an episode (each was reset at its end)
        steps = self.capacity
        for t in range(self.capacity):
            self.obs_buf[t].copy_(obs)
            self.starts[t].copy_(start)
            self.state_in[0][t].copy_(state[0])
            self.state_in[1][t].copy_(state[1])
            with torch.inference_mode():  # the actor's outputs are valid until its next call
                params, value, state = self.actor(obs, state, start)
                actions = head.sample(params)
            self.actions[t].copy_(actions)
            self.values[t].copy_(value)
            actions_np = actions.numpy()
            for i, env in enumerate(self.envs):
                if not active[i]:
                    rewards[t, i], dones[t, i], mask[t, i] = 0.0, 1.0, 0.0
                    continue
                try:
                    next_obs, reward, terminated, truncated, info = env.step(head.to_env(actions_np[i]))
                except EngineError as err:
                    # The game is lost mid-episode: its episode is cut off here, like a timeout, with no
                    # made-up terminal reward. Reward V(s_t) and done make the return at t equal the
                    # value there (no gradient for the action the game never played) and bootstrap
                    # every earlier step of the episode from it. Without a critic there is nothing to
                    # bootstrap from: the episode just ends.
                    rewards[t, i] = 0.0
                    bootstraps[t, i] = float(self.values[t, i]) if self.critic else 0.0
                    dones[t, i] = 1.0
                    obs_np[i] = self._replace_game(i, str(err))
                    if self.whole_episodes:  # the game's episode is over; the unplayed step is not counted
                        active[i] = False
                        mask[t, i] = 0.0
                    continue
                if truncated and not terminated and self.critic:
                    # A timeout is not a terminal state: bootstrap from the value where it was cut.
                    with torch.inference_mode():
                        row = (state[0][i : i + 1], state[1][i : i + 1])
                        _, tail, _ = self.model(torch.as_tensor(next_obs).unsqueeze(0), row, torch.zeros(1))
                    bootstraps[t, i] = gamma * float(tail)
                rewards[t, i] = reward
                ended = terminated or truncated
                dones[t, i] = ended
                if ended:
                    episode = info.get("episode")  # none where only a life was lost: the game goes on
                    if episode is not None:
                        self.out.put(EpisodeDone(self.rank, float(episode["r"]), int(episode["l"]),
                                                 episode.get("shaped")))
                    next_obs = self._reset_game(i)
                    if self.whole_episodes:
                        active[i] = False
                obs_np[i] = next_obs
            start = self.dones[t].clone()
            if not active.any():
                steps = t + 1
                break
        if self.normalizer is not None:
            self.normalizer.normalize(rewards[:steps], dones[:steps], mask[:steps])
        rewards[:steps] += bootstraps[:steps]
        return obs, (state[0].clone(), state[1].clone()), start, steps

    def update(self, last_value: torch.Tensor, steps: int | None = None) -> dict[str, float]:
        """Replay the rollout's first ``steps`` steps with gradients, compute the loss, step the shared optimizer.
        The replay starts from the state the rollout started in (not from zeros) and steps the LSTM through
        the states acting recorded, which the same weights computed."""
        cfg = self.cfg
        steps = steps or self.capacity
        rewards, values, dones, mask = (x[:steps] for x in (self.rewards, self.values, self.dones, self.mask))
        advantages, returns = estimate_advantages(cfg.advantage, rewards, values, dones, last_value, mask,
                                                  cfg.gamma, cfg.gae_lambda)
        if cfg.normalize_advantages:
            advantages = normalize_advantages(advantages, mask)
        recorded = (self.state_in[0][:steps], self.state_in[1][:steps]) if self.model.lstm else None
        first_state = (self.state_in[0][0], self.state_in[1][0])
        params, new_values, _ = self.model.unroll(self.obs_buf[:steps], first_state, self.starts[:steps], recorded)
        params = params.flatten(0, 1)
        log_probs, entropy = self.head.log_prob_and_entropy(params, self.actions[:steps].flatten(0, 1))
        entropy_beta = scheduled_entropy_beta(cfg, self.shared.total_frames())
        loss, stats = policy_gradient_loss(
            log_probs, entropy, new_values.flatten(), advantages.flatten(), returns.flatten(), entropy_beta,
            cfg.value_coef if self.critic else 0.0, mask.flatten() if self.whole_episodes else None)
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.local_params, cfg.max_grad_norm)
        lr = self.shared.push(self.local_params, cfg)
        if lr is not None:
            stats["charts/learning_rate"] = lr
        if not math.isnan(cfg.entropy_beta_end):
            stats["charts/entropy_beta"] = entropy_beta
        stats["losses/grad_norm"] = float(grad_norm)
        return stats

    def close(self) -> None:
        """Shut the games down."""
        for env in self.envs:
            try:
                env.close()
            except Exception:  # closing the rest matters more than one game's complaint
                pass


def _supervisor_alive() -> bool:
    """False once the process that started this worker has died (killed with SIGKILL, say), so that a
    worker never trains on without anyone to stop it. True in the supervisor's own process (tests)."""
    parent = mp.parent_process()
    return parent is None or parent.is_alive()
