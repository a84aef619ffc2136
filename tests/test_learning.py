"""A seeded learning test: on the real basic scenario, a small budget of A3C updates must really improve
the agent. One worker runs in this process, so the run is reproducible from its seeds."""

from __future__ import annotations

import dataclasses
import os
import queue

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from doom_a3c.config import TrainConfig
from doom_a3c.envs import make_env
from doom_a3c.evaluation import evaluate, summarize
from doom_a3c.model import ActorCritic
from doom_a3c.shared_optim import SharedAdam
from doom_a3c.worker import SharedHandles, Worker

FRAMES = int(os.environ.get("DOOM_A3C_LEARNING_FRAMES", "0")) or None


def _episodes(handles):
    rewards = []
    while True:
        try:
            kind, _, payload = handles.stats.get(timeout=0.01)
        except queue.Empty:
            return rewards
        if kind == "episode":
            rewards.append(payload["reward"])


@pytest.mark.slow
def test_a3c_learns_basic_from_pixels(basic_spec):
    # A smaller picture makes each update cheap; the task is the real one.
    spec = dataclasses.replace(basic_spec, size=(42, 42))
    cfg = TrainConfig(workers=1, envs_per_worker=4, lr=1e-3, hidden_size=128, gae_lambda=0.95, seed=1)
    torch.manual_seed(cfg.seed)
    model = ActorCritic(spec.obs_shape, spec.num_actions, cfg.hidden_size)
    ctx = mp.get_context("spawn")
    handles = SharedHandles(model, SharedAdam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps), ctx.Lock(),
                            ctx.Value("q", 0), ctx.Queue(), ctx.Event())
    eval_env = make_env(spec, seed=12345)
    before = summarize(evaluate(eval_env, model, 20, greedy=False,
                                generator=torch.Generator().manual_seed(0))[0])

    worker = Worker(0, cfg, spec, handles)
    budget = FRAMES or 700_000
    update = worker.update
    rewards: list[float] = []

    def update_then_check(*args):
        stats = update(*args)
        rewards.extend(_episodes(handles))
        if handles.frames.value + cfg.rollout_len * cfg.envs_per_worker * spec.frame_skip >= budget:
            handles.stop.set()
        return stats

    worker.update = update_then_check
    try:
        worker.run()
    finally:
        worker.close()
    rewards.extend(_episodes(handles))
    after = summarize(evaluate(eval_env, model, 20, greedy=False, generator=torch.Generator().manual_seed(0))[0])
    eval_env.close()
    print(f"sampled policy: before {before['mean']:.1f}, after {after['mean']:.1f}; training episodes "
          f"first 50 {np.mean(rewards[:50]):.1f}, last 50 {np.mean(rewards[-50:]):.1f}")
    # A random policy scores about -150 here; an agent that has learned to line up and shoot scores
    # above 0. Both the training episodes and a separate evaluation must show it.
    assert after["mean"] > before["mean"] + 100
    assert np.mean(rewards[-50:]) > np.mean(rewards[:50]) + 100
