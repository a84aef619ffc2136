"""One A3C training worker: its own games and local model, updating the shared model asynchronously."""

from __future__ import annotations

import signal
import traceback
from dataclasses import dataclass
from typing import Any

import torch
import torch.multiprocessing as mp

from doom_a3c.config import TrainConfig
from doom_a3c.envs import ScenarioSpec, make_env
from doom_a3c.model import ActorCritic, acting_mode
from doom_a3c.returns import a3c_loss, compute_gae
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


def worker_main(rank: int, cfg: TrainConfig, spec: ScenarioSpec, shared: SharedHandles) -> None:
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
    """Steps ``envs_per_worker`` games with one batched forward pass, and updates every ``rollout_len`` steps."""

    def __init__(self, rank: int, cfg: TrainConfig, spec: ScenarioSpec, shared: SharedHandles):
        self.rank, self.cfg, self.spec, self.shared = rank, cfg, spec, shared
        torch.manual_seed(cfg.seed + rank)
        num_envs = cfg.envs_per_worker
        self.envs = [make_env(spec, seed=cfg.seed + rank * num_envs + i) for i in range(num_envs)]
        self.model = ActorCritic(spec.obs_shape, spec.num_actions, cfg.hidden_size)
        self.local_params = list(self.model.parameters())
        self.shared_params = list(shared.model.parameters())
        steps = cfg.rollout_len
        # Rollout buffers, allocated once and reused: nothing on the per-step path allocates them again.
        self.obs_buf = torch.zeros((steps, num_envs, *spec.obs_shape), dtype=torch.uint8)
        self.starts = torch.zeros(steps, num_envs)  # 1 where step t is the first of an episode
        self.actions = torch.zeros(steps, num_envs, dtype=torch.long)
        self.rewards = torch.zeros(steps, num_envs)
        self.dones = torch.zeros(steps, num_envs)  # 1 where the episode ended at step t
        self.values = torch.zeros(steps, num_envs)

    def sync_weights(self) -> None:
        """Copy the shared weights into the local model, once per rollout."""
        with torch.no_grad():
            for local, shared in zip(self.local_params, self.shared_params):
                local.copy_(shared)

    def run(self) -> None:
        """Collect rollouts and push updates until told to stop."""
        cfg, shared = self.cfg, self.shared
        obs = torch.stack([torch.from_numpy(env.reset()[0]) for env in self.envs])
        state = self.model.initial_state(len(self.envs))
        start = torch.ones(len(self.envs))
        while not shared.stop.is_set() and _supervisor_alive():
            self.sync_weights()
            # Detached copies: the update replays the rollout from exactly this state, not from zeros.
            first_state = (state[0].clone(), state[1].clone())
            obs, state, start = self.collect(obs, state, start)
            with torch.inference_mode():
                _, last_value, _ = self.model(obs, state, start)
            stats = self.update(first_state, last_value.clone())
            frames = cfg.rollout_len * len(self.envs) * self.spec.frame_skip
            with shared.frames.get_lock():
                shared.frames.value += frames
            stats["frames"] = frames
            shared.stats.put(("update", self.rank, stats))

    @acting_mode()
    def collect(self, obs: torch.Tensor, state, start: torch.Tensor):
        """Step every game ``rollout_len`` times, filling the rollout buffers.

        Per-game bookkeeping goes through NumPy views of the torch buffers: indexing a torch tensor
        from Python costs microseconds a call, paid per game per step.
        """
        gamma = self.cfg.gamma
        obs_np = obs.numpy()  # the next observations, written in place as the games step
        rewards, dones = self.rewards.numpy(), self.dones.numpy()
        for t in range(self.cfg.rollout_len):
            self.obs_buf[t].copy_(obs)
            self.starts[t].copy_(start)
            with torch.inference_mode():
                logits, value, state = self.model(obs, state, start)
                actions = torch.multinomial(logits.softmax(dim=1), 1).squeeze(1)
            self.actions[t].copy_(actions)
            self.values[t].copy_(value)
            for i, (env, action) in enumerate(zip(self.envs, actions.tolist())):
                next_obs, reward, terminated, truncated, info = env.step(action)
                if truncated and not terminated:
                    # A timeout is not a terminal state: bootstrap from the value where it was cut.
                    with torch.inference_mode():
                        row = (state[0][i : i + 1], state[1][i : i + 1])
                        _, tail, _ = self.model(torch.from_numpy(next_obs).unsqueeze(0), row, torch.zeros(1))
                    reward += gamma * float(tail)
                rewards[t, i] = reward
                ended = terminated or truncated
                dones[t, i] = ended
                if ended:
                    episode = info["episode"]
                    self.shared.stats.put(("episode", self.rank, {"reward": episode["r"], "length": episode["l"]}))
                    next_obs, _ = env.reset()
                obs_np[i] = next_obs
            start = self.dones[t].clone()
        return obs, state, start

    def update(self, first_state, last_value: torch.Tensor) -> dict[str, float]:
        """Replay the rollout with gradients, compute the A3C loss, and step the shared optimizer."""
        cfg = self.cfg
        advantages, returns = compute_gae(self.rewards, self.values, self.dones, last_value, cfg.gamma,
                                          cfg.gae_lambda)
        logits, values, _ = self.model.unroll(self.obs_buf, first_state, self.starts)
        loss, stats = a3c_loss(logits.flatten(0, 1), values.flatten(), self.actions.flatten(),
                               advantages.flatten(), returns.flatten(), cfg.entropy_beta, cfg.value_coef)
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.local_params, cfg.max_grad_norm)
        with self.shared.update_lock:
            # Hand the fresh local gradients to the shared parameters at every update (the old
            # "set once, then return early" aliasing goes stale when grads are set to None).
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
