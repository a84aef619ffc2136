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
def run_episode(env, model: ActorCritic, greedy: bool = True, record: bool = False,
                generator: torch.Generator | None = None) -> EpisodeResult:
    """Play one episode; greedy takes the most likely action, otherwise actions are sampled."""
    obs, _ = env.reset()
    state = model.initial_state(1)
    not_done = torch.zeros(1)
    frames = [env.last_frame().copy()] if record else []
    total, length = 0.0, 0
    while True:
        logits, _, state = model(torch.from_numpy(obs).unsqueeze(0), state, not_done)
        if greedy:
            action = int(logits.argmax(dim=1))
        else:
            action = int(torch.multinomial(logits.softmax(dim=1), 1, generator=generator))
        obs, _, terminated, truncated, info = env.step(action)
        total += info["raw_reward"]
        length += 1
        if record:
            frames.append(env.last_frame().copy())
        if terminated or truncated:
            return EpisodeResult(float(info["episode"]["r"]), length, frames)


def evaluate(env, model: ActorCritic, episodes: int, greedy: bool = True, record_first: bool = False,
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
