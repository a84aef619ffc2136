"""Running the agent for whole episodes: greedy evaluation, sampling, recording frames."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from doom_a3c.model import ActorCritic, acting_mode


@dataclass
class EpisodeResult:
    """One episode's raw (unscaled) return, its length in env steps, and frames if recorded."""

    reward: float
    length: int
    frames: list[np.ndarray] = field(default_factory=list)


@torch.inference_mode()
@acting_mode()
def run_episode(env, model: ActorCritic | None, greedy: bool = True, record: bool = False,
                generator: torch.Generator | None = None) -> EpisodeResult:
    """Play one episode; greedy takes the most likely (or mean) action, otherwise actions are sampled.
    ``model=None`` plays uniformly random actions from the env's action space: the random baseline."""
    obs, _ = env.reset()
    state = model.initial_state(1) if model is not None else None
    not_done = torch.zeros(1)
    frames = [env.last_frame().copy()] if record else []
    length = 0
    while True:
        if model is None:
            action = env.action_space.sample()
        else:
            params, _, state = model(torch.as_tensor(obs).unsqueeze(0), state, not_done)
            choice = model.policy.greedy(params) if greedy else model.policy.sample(params, generator=generator)
            action = model.policy.to_env(choice[0].numpy())
        obs, _, terminated, truncated, info = env.step(action)
        length += 1
        if record:
            frames.append(env.last_frame().copy())
        if terminated or truncated:
            return EpisodeResult(float(info["episode"]["r"]), length, frames)


def evaluate(env, model: ActorCritic | None, episodes: int, greedy: bool = True, record_first: bool = False,
             generator: torch.Generator | None = None) -> tuple[list[EpisodeResult], list[np.ndarray]]:
    """Run ``episodes`` episodes; returns their results and the frames of the first if asked."""
    results = [run_episode(env, model, greedy, record_first and i == 0, generator) for i in range(episodes)]
    frames = results[0].frames if results else []
    for r in results:
        r.frames = []
    return results, frames


def summarize(results: list[EpisodeResult]) -> dict[str, float]:
    """Mean, std, min and max of the raw returns, and the mean length."""
    rewards = np.array([r.reward for r in results], dtype=np.float64)
    lengths = np.array([r.length for r in results], dtype=np.float64)
    return {"mean": float(rewards.mean()), "std": float(rewards.std()), "min": float(rewards.min()),
            "max": float(rewards.max()), "length": float(lengths.mean()), "episodes": len(results)}
