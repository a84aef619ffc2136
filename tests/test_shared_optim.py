"""The shared Adam: its moments and step counter live in shared memory and are one set for all workers."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp

from doom_a3c.model import ActorCritic
from doom_a3c.shared_optim import SharedAdam


def _grads(model, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=generator) for p in model.parameters()]


def _child_step(model, optimizer, seed):
    """Runs in a spawned worker process: one optimizer step on the shared model with its own gradients."""
    for p, g in zip(model.parameters(), _grads(model, seed)):
        p.grad = g
    optimizer.step()


def test_state_is_in_shared_memory_from_the_start():
    model = ActorCritic((1, 84, 84), 3, 16)
    optimizer = SharedAdam(model.parameters())
    for p in model.parameters():
        state = optimizer.state[p]
        assert set(state) == {"step", "exp_avg", "exp_avg_sq"}
        assert all(t.is_shared() for t in state.values())


def test_steps_in_other_processes_update_the_one_shared_state():
    torch.manual_seed(0)
    model = ActorCritic((1, 84, 84), 3, 16)
    reference = ActorCritic((1, 84, 84), 3, 16)
    reference.load_state_dict(model.state_dict())
    model.share_memory()
    optimizer = SharedAdam(model.parameters(), lr=1e-2)
    ref_optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)

    ctx = mp.get_context("spawn")
    for seed in (11, 12):  # two worker processes, one after the other
        process = ctx.Process(target=_child_step, args=(model, optimizer, seed))
        process.start()
        process.join(timeout=120)
        assert process.exitcode == 0
        for p, g in zip(reference.parameters(), _grads(reference, seed)):
            p.grad = g
        ref_optimizer.step()

    # The parent sees both children's steps: the shared counter says 2 (bias correction stays right),
    # and weights and moments equal one Adam that took the same two steps.
    assert optimizer.steps == 2
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
        assert torch.allclose(optimizer.state[p]["exp_avg"], ref_optimizer.state[q]["exp_avg"], atol=1e-7)
        assert torch.allclose(optimizer.state[p]["exp_avg_sq"], ref_optimizer.state[q]["exp_avg_sq"], atol=1e-9)


def test_loaded_state_is_shared_again():
    model = ActorCritic((1, 84, 84), 3, 16)
    optimizer = SharedAdam(model.parameters())
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    other = SharedAdam(model.parameters())
    other.load_state_dict(optimizer.state_dict())
    assert other.steps == 1
    assert all(t.is_shared() for s in other.state.values() for t in s.values())
