"""Running the agent for whole episodes: greedy evaluation, sampling, recording frames."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from doom_a3c.explain import Explainer, model_forward
from doom_a3c.model import ActorCritic


@dataclass
class EpisodeResult:
    """One episode's raw (unscaled) return, its length in env steps, and frames if recorded."""

    reward: float
    length: int
    frames: list[np.ndarray] = field(default_factory=list)


@torch.inference_mode()
def run_episode(env, model: ActorCritic | None, greedy: bool = True, record: bool = False,
                generator: torch.Generator | None = None, explainer: Explainer | None = None,
                max_frames: int = 0) -> EpisodeResult:
    """Play one episode; greedy takes the most likely (or mean) action, otherwise actions are sampled.
    ``model=None`` plays uniformly random actions from the env's action space: the random baseline.
    ``record`` keeps the frames (the first ``max_frames`` where that is > 0); with an ``explainer`` (and
    a model), the explained frame of every step."""
    obs, _ = env.reset()
    state = model.initial_state(1) if model is not None else None
    not_done = torch.zeros(1)
    explaining = record and explainer is not None and model is not None
    frames = [env.last_frame().copy()] if record and not explaining else []
    length, earned = 0, 0.0

    def room() -> bool:  # recording, and under the frame limit
        return record and (max_frames <= 0 or len(frames) < max_frames)

    while True:
        if model is None:
            action = env.action_space.sample()
        else:
            params, value, next_state = model(torch.as_tensor(obs).unsqueeze(0), state, not_done)
            choice = model.policy.greedy(params) if greedy else model.policy.sample(params, generator=generator)
            if explaining and room():
                probs = torch.softmax(params[0], dim=-1).numpy()
                frames.append(explainer.frame(env.last_frame(), obs, model_forward(model, state, not_done), probs,
                                              float(value[0]), int(choice[0]), earned))
            state = next_state
            action = model.policy.to_env(choice[0].numpy())
        obs, reward, terminated, truncated, info = env.step(action)
        earned += float(info.get("raw_reward", reward))
        length += 1
        if not explaining and room():
            frames.append(env.last_frame().copy())
        if terminated or truncated:
            return EpisodeResult(float(info["episode"]["r"]), length, frames)


def evaluate(env, model: ActorCritic | None, episodes: int, greedy: bool = True, record_first: bool = False,
             generator: torch.Generator | None = None,
             explainer: Explainer | None = None,
             max_frames: int = 0, on_episode=None) -> tuple[list[EpisodeResult], list[np.ndarray]]:
    """Run ``episodes`` episodes; returns their results and the frames of the first if asked (explained
    ones with an ``explainer``; the first ``max_frames`` where that is > 0). ``on_episode(i, result)``
    after each (i from 1)."""
    results = []
    for i in range(episodes):
        results.append(run_episode(env, model, greedy, record_first and i == 0, generator,
                                   explainer if i == 0 else None, max_frames))
        if on_episode is not None:
            on_episode(i + 1, results[-1])
    frames = results[0].frames if results else []
    for r in results:
        r.frames = []
    return results, frames


def play_episodes(env, model: ActorCritic | None, episodes: int, greedy: bool = True, seed: int = 0,
                  record: bool = False, on_episode=None, explain=None, max_frames: int = 0,
                  stop_on: tuple = ()) -> tuple[list[EpisodeResult], BaseException | None]:
    """``play.py``'s episodes: the env's action space (random agent) and the sampler seeded with ``seed``,
    so the same seed plays the same episodes; ``on_episode(i, result)`` after each; ``explain()`` makes
    a fresh Explainer per episode; ``max_frames`` > 0 stops recording (and explaining) after that many
    frames in all. An exception of a type in ``stop_on`` (Ctrl-C, a closed window) ends it early:
    returns the episodes played so far and that exception (None when all were played)."""
    env.action_space.seed(seed)
    generator = torch.Generator().manual_seed(seed)
    results: list[EpisodeResult] = []
    recorded = 0
    try:
        for i in range(1, episodes + 1):
            keep = record and (max_frames <= 0 or recorded < max_frames)
            explainer = explain() if explain is not None and keep else None
            result = run_episode(env, model, greedy=greedy, record=keep, generator=generator,
                                 explainer=explainer, max_frames=max_frames - recorded if max_frames > 0 else 0)
            recorded += len(result.frames)
            results.append(result)
            if on_episode is not None:
                on_episode(i, result)
    except stop_on as stopped:
        return results, stopped
    return results, None


def summarize(results: list[EpisodeResult]) -> dict[str, float]:
    """Mean, std, min and max of the raw returns, and the mean length."""
    rewards = np.array([r.reward for r in results], dtype=np.float64)
    lengths = np.array([r.length for r in results], dtype=np.float64)
    return {"mean": float(rewards.mean()), "std": float(rewards.std()), "min": float(rewards.min()),
            "max": float(rewards.max()), "length": float(lengths.mean()), "episodes": len(results)}
