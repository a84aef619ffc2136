"""One A3C training worker: its own games and local model, updating the shared model asynchronously."""

from __future__ import annotations

import signal
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp

from doom_a3c.config import TrainConfig
from doom_a3c.envs import EnvSpec, make_env
from doom_a3c.model import ActorCritic, acting_mode
from doom_a3c.returns import estimate_advantages, policy_gradient_loss, uses_critic
from doom_a3c.shared_optim import SharedAdam


@dataclass
class SharedHandles:
    """What the supervisor shares with every worker: the model, its optimizer and the channels back."""

    model: ActorCritic
    optimizer: SharedAdam
    update_lock: Any  # mp.Lock: one optimizer step at a time, so the shared Adam state stays consistent
    frames: Any  # mp.Value('q'): frames trained on so far, all workers together
    stats: Any  # mp.Queue of ("episode" | "update" | "error", rank, payload)
    stop: Any  # mp.Event: set by the supervisor to end training


def worker_main(rank: int, cfg: TrainConfig, spec: EnvSpec, shared: SharedHandles) -> None:
    """Process entry point: train until ``shared.stop`` is set; report any exception with the rank."""
    # Ctrl-C reaches every process in the group; only the supervisor handles it, then sets ``stop``.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One thread per worker: several workers each using every core fight over them (DESIGN.md).
    torch.set_num_threads(1)
    worker = None
    try:
        worker = Worker(rank, cfg, spec, shared)
        worker.run()
    except Exception:
        shared.stats.put(("error", rank, traceback.format_exc()))
        raise
    finally:
        if worker is not None:
            worker.close()


class Worker:
    """Steps ``envs_per_worker`` games with one batched forward pass and updates after every rollout:
    ``rollout_len`` steps, or (``rollout_len`` 0) one whole episode of every game."""

    def __init__(self, rank: int, cfg: TrainConfig, spec: EnvSpec, shared: SharedHandles):
        self.rank, self.cfg, self.spec, self.shared = rank, cfg, spec, shared
        torch.manual_seed(cfg.seed + rank)
        num_envs = cfg.envs_per_worker
        self.envs = [make_env(spec, seed=cfg.seed + rank * num_envs + i) for i in range(num_envs)]
        self.model = ActorCritic(**shared.model.model_kwargs())
        self.head = self.model.policy
        self.local_params = list(self.model.parameters())
        self.shared_params = list(shared.model.parameters())
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
        self.dones = torch.zeros(steps, num_envs)  # 1 where the episode ended at step t
        self.values = torch.zeros(steps, num_envs)
        self.mask = torch.ones(steps, num_envs)  # 0 where a game had already finished its episode

    def sync_weights(self) -> None:
        """Copy the shared weights into the local model, once per rollout."""
        with torch.no_grad():
            for local, shared in zip(self.local_params, self.shared_params):
                local.copy_(shared)

    def run(self) -> None:
        """Collect rollouts and push updates until told to stop."""
        shared = self.shared
        obs = torch.stack([torch.as_tensor(env.reset()[0]) for env in self.envs])
        state = self.model.initial_state(len(self.envs))
        start = torch.ones(len(self.envs))
        while not shared.stop.is_set() and _supervisor_alive():
            obs, state, start, stats = self.train_rollout(obs, state, start)
            with shared.frames.get_lock():
                shared.frames.value += stats["frames"]
            shared.stats.put(("update", self.rank, stats))

    def train_rollout(self, obs: torch.Tensor, state, start: torch.Tensor):
        """One rollout and its update; returns what the next rollout starts from and the update's stats."""
        self.sync_weights()
        # Detached copies: the update replays the rollout from exactly this state, not from zeros.
        first_state = (state[0].clone(), state[1].clone())
        obs, state, start, steps = self.collect(obs, state, start)
        last_value = torch.zeros(len(self.envs))
        if self.critic and not self.whole_episodes:
            with torch.inference_mode():
                _, last_value, _ = self.model(obs, state, start)
        stats = self.update(first_state, last_value.clone(), steps)
        stats["frames"] = int(self.mask[:steps].sum()) * self.spec.frame_skip
        stats["steps"] = steps
        return obs, state, start, stats

    @acting_mode()
    def collect(self, obs: torch.Tensor, state, start: torch.Tensor):
        """Step every game, filling the rollout buffers; returns the carried-over values and the step count.

        With whole episodes, a game whose episode has ended waits (masked out, its state held at zero)
        until every game has finished its own. Per-game bookkeeping goes through NumPy views of the
        torch buffers: indexing a torch tensor from Python costs microseconds a call, paid per game per step.
        """
        gamma, head = self.cfg.gamma, self.head
        obs_np = obs.numpy()  # the next observations, written in place as the games step
        rewards, dones, mask = self.rewards.numpy(), self.dones.numpy(), self.mask.numpy()
        mask.fill(1.0)
        active = np.ones(len(self.envs), dtype=bool)
        if self.whole_episodes:
            start = torch.ones(len(self.envs))  # every game starts an episode (each was reset at its end)
        steps = self.capacity
        for t in range(self.capacity):
            self.obs_buf[t].copy_(obs)
            self.starts[t].copy_(start)
            with torch.inference_mode():
                params, value, state = self.model(obs, state, start)
                actions = head.sample(params)
            self.actions[t].copy_(actions)
            self.values[t].copy_(value)
            actions_np = actions.numpy()
            for i, env in enumerate(self.envs):
                if not active[i]:
                    rewards[t, i], dones[t, i], mask[t, i] = 0.0, 1.0, 0.0
                    continue
                next_obs, reward, terminated, truncated, info = env.step(head.to_env(actions_np[i]))
                if truncated and not terminated and self.critic:
                    # A timeout is not a terminal state: bootstrap from the value where it was cut.
                    with torch.inference_mode():
                        row = (state[0][i : i + 1], state[1][i : i + 1])
                        _, tail, _ = self.model(torch.as_tensor(next_obs).unsqueeze(0), row, torch.zeros(1))
                    reward += gamma * float(tail)
                rewards[t, i] = reward
                ended = terminated or truncated
                dones[t, i] = ended
                if ended:
                    episode = info["episode"]
                    self.shared.stats.put(("episode", self.rank, {"reward": episode["r"], "length": episode["l"]}))
                    next_obs, _ = env.reset()
                    if self.whole_episodes:
                        active[i] = False
                obs_np[i] = next_obs
            start = self.dones[t].clone()
            if not active.any():
                steps = t + 1
                break
        return obs, state, start, steps

    def update(self, first_state, last_value: torch.Tensor, steps: int | None = None) -> dict[str, float]:
        """Replay the rollout's first ``steps`` steps with gradients, compute the loss, step the shared optimizer."""
        cfg = self.cfg
        steps = steps or self.capacity
        rewards, values, dones, mask = (x[:steps] for x in (self.rewards, self.values, self.dones, self.mask))
        advantages, returns = estimate_advantages(cfg.advantage, rewards, values, dones, last_value, mask,
                                                  cfg.gamma, cfg.gae_lambda)
        params, new_values, _ = self.model.unroll(self.obs_buf[:steps], first_state, self.starts[:steps])
        params = params.flatten(0, 1)
        log_probs, entropy = self.head.log_prob_and_entropy(params, self.actions[:steps].flatten(0, 1))
        loss, stats = policy_gradient_loss(
            log_probs, entropy, new_values.flatten(), advantages.flatten(), returns.flatten(), cfg.entropy_beta,
            cfg.value_coef if self.critic else 0.0, mask.flatten() if self.whole_episodes else None)
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.local_params, cfg.max_grad_norm)
        if cfg.lr_decay:  # each process holds its own copy of the param groups: set it from the shared count
            progress = min(self.shared.frames.value / cfg.max_frames, 1.0)
            for group in self.shared.optimizer.param_groups:
                group["lr"] = cfg.lr * (1.0 - progress)
            stats["charts/learning_rate"] = cfg.lr * (1.0 - progress)
        with self.shared.update_lock:
            # Hand the fresh local gradients to the shared parameters at every update (the old
            # "set once, then return early" aliasing goes stale when grads are set to None). Without a
            # critic the value head has no gradient: its shared grad is cleared, so Adam skips it.
            for local, shared in zip(self.local_params, self.shared_params):
                shared.grad = local.grad
            self.shared.optimizer.step()
        stats["losses/grad_norm"] = float(grad_norm)
        return stats

    def close(self) -> None:
        """Shut the games down."""
        for env in self.envs:
            env.close()


def _supervisor_alive() -> bool:
    """False once the process that started this worker has died (killed with SIGKILL, say), so that a
    worker never trains on without anyone to stop it. True in the supervisor's own process (tests)."""
    parent = mp.parent_process()
    return parent is None or parent.is_alive()
