"""A learning test: on the real basic scenario, A3C must lift the agent from random play to hitting the
monster, within a generous frame cap. One worker runs in this process.

Fixed seeds do not fix the arithmetic across processors (oneDNN and the BLAS pick kernels per instruction
set), so a run on another CPU takes another path. The assertion is therefore "reach a modest target before
a cap", with the cap and the margins measured over many seeds (see the numbers below), not "this seed
reaches that score after exactly N frames".

Measured on today's basic preset (its [train] table: gamma 0.9, 4 games, lr 5e-4; one worker here) on a
2-core x86 machine over seeds 1-6 (DOOM_A3C_LEARNING_SEED=N DOOM_A3C_LEARNING_FRAMES=600000 pytest
tests/test_learning.py -s, which runs on past the target and prints where the training mean reached each
level): the mean of the last 50 training episodes first reached 0 after 244k, 296k, 305k, 309k, 329k and
353k frames (median 307k); the cap is 700k, 2.0 times the slowest seed. Learning comes as a jump: -50 was
reached 3k-27k frames before 0, +50 24k-57k after it. The separate sampled evaluation rose by 219 to 294
(median 241) over the same untrained network's, from -216..-141 to +77..+81; the assertion asks for 100.
"""

from __future__ import annotations

import collections
import os
import queue

import numpy as np
import pytest
import torch

from doom_a3c.config import TrainConfig
from doom_a3c.envs import make_env
from doom_a3c.evaluation import evaluate, summarize
from doom_a3c.messages import EpisodeDone
from doom_a3c.model import ActorCritic
from doom_a3c.worker import Worker, make_shared_handles

SEED = int(os.environ.get("DOOM_A3C_LEARNING_SEED", "1"))
CAP = int(os.environ.get("DOOM_A3C_LEARNING_FRAMES", "0")) or 700_000
TARGET = 0.0  # mean raw reward of the last 50 training episodes; a random agent scores about -170
WINDOW = 50
LEVELS = (-150, -100, -50, 0, 25, 50)


@pytest.mark.slow
def test_a3c_learns_basic_from_pixels(basic_spec):
    # Today's basic preset (its [train] table), with one worker in this process.
    preset = {k: v for k, v in basic_spec.train.items() if k not in ("max_frames", "max_minutes")}
    cfg = TrainConfig(**{**preset, "workers": 1, "seed": SEED})
    torch.manual_seed(cfg.seed)
    model = ActorCritic(basic_spec.obs_shape, basic_spec.num_actions, cfg.hidden_size)
    handles = make_shared_handles(model, cfg)
    eval_env = make_env(basic_spec, seed=12345 + SEED)
    before = summarize(evaluate(eval_env, model, 50, greedy=False,
                                generator=torch.Generator().manual_seed(SEED))[0])

    worker = Worker(0, cfg, basic_spec, handles)
    recent: collections.deque = collections.deque(maxlen=WINDOW)
    reached_at = None
    crossed: dict[float, int] = {}
    update = worker.update

    def update_then_check(*args):
        stats = update(*args)
        nonlocal reached_at
        recent.extend(_episode_rewards(handles))
        frames = handles.total_frames()
        if len(recent) == WINDOW and np.mean(recent) >= TARGET and reached_at is None:
            reached_at = frames
            if not os.environ.get("DOOM_A3C_LEARNING_FRAMES"):
                handles.stop.set()
        if len(recent) == WINDOW:  # where the training mean first reached each level (for the margins above)
            crossed.update({level: frames for level in LEVELS if level not in crossed and np.mean(recent) >= level})
        if frames >= CAP:
            handles.stop.set()
        return stats

    worker.update = update_then_check
    try:
        worker.run()
    finally:
        worker.close()
    after = summarize(evaluate(eval_env, model, 50, greedy=False,
                               generator=torch.Generator().manual_seed(SEED))[0])
    eval_env.close()
    print(f"seed {SEED}: training mean of the last {WINDOW} episodes reached {TARGET:g} after "
          f"{reached_at} frames (cap {CAP}); sampled evaluation before {before['mean']:.1f}, "
          f"after {after['mean']:.1f}; levels reached (frames): {crossed}")
    assert reached_at is not None, f"training episodes averaged {np.mean(recent):.1f} after {CAP} frames"
    # A separate evaluation of the trained model must show it too, well clear of random play.
    assert after["mean"] > before["mean"] + 100


def _episode_rewards(handles) -> list[float]:
    rewards = []
    while True:
        try:
            message = handles.queue(0).get_nowait()
        except queue.Empty:
            return rewards
        if isinstance(message, EpisodeDone):
            rewards.append(message.reward)
