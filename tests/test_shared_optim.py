"""The shared Adam: its moments and step counter live in shared memory and are one set for all workers."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp

from doom_a3c.model import ActorCritic
from doom_a3c.shared_optim import SharedAdam


def _grads(model, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=generator) for p in model.parameters()]


def _child_step(model, update, seed):
    """Runs in a spawned worker process: one step of the shared Adam with its own gradients, without
    building a torch Optimizer (which would import torch._dynamo: 68 MB in every worker)."""
    import sys

    update.step(model.parameters(), _grads(model, seed))
    assert "torch._dynamo" not in sys.modules


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
        process = ctx.Process(target=_child_step, args=(model, optimizer.for_workers(), seed))
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


def test_the_workers_step_is_torch_adams_bit_for_bit():
    """Several steps with changing learning rates and a parameter without a gradient (skipped, as Adam
    skips it): weights and moments equal torch.optim.Adam's exactly."""
    torch.manual_seed(0)
    model, reference = ActorCritic((1, 42, 42), 3, 16), ActorCritic((1, 42, 42), 3, 16)
    reference.load_state_dict(model.state_dict())
    optimizer = SharedAdam(model.parameters(), lr=5e-4, eps=1e-5)
    update = optimizer.for_workers()
    ref_optimizer = torch.optim.Adam(reference.parameters(), lr=5e-4, eps=1e-5, foreach=False)
    for seed, lr in zip(range(5), (5e-4, 4e-4, 3e-4, 2e-4, 1e-4)):
        for net in (model, reference):
            for p, g in zip(net.parameters(), _grads(net, seed)):
                p.grad = g
            net.value.weight.grad = None
        update.step(model.parameters(), [p.grad for p in model.parameters()], lr)
        ref_optimizer.param_groups[0]["lr"] = lr
        ref_optimizer.step()
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.equal(p, q)
        if q in ref_optimizer.state:
            assert torch.equal(optimizer.state[p]["exp_avg_sq"], ref_optimizer.state[q]["exp_avg_sq"])
            assert torch.equal(optimizer.state[p]["step"], ref_optimizer.state[q]["step"])
    assert optimizer.steps == 5 and int(optimizer.state[model.value.weight]["step"]) == 0


def test_the_workers_adam_step_equals_torch_adam_bit_for_bit():
    """AdamUpdate (every parameter at once, no Optimizer in the worker) against torch.optim.Adam's
    single-tensor path, on the same gradients, a head without gradient and a changing learning rate."""
    torch.manual_seed(0)
    model = ActorCritic((1, 42, 42), 3, 32)
    reference = ActorCritic((1, 42, 42), 3, 32)
    reference.load_state_dict(model.state_dict())
    shared = SharedAdam(model.parameters(), lr=1e-3, eps=1e-5)
    adam = torch.optim.Adam(reference.parameters(), lr=1e-3, eps=1e-5, foreach=False)
    update = shared.for_workers()
    for step in range(25):
        grads = [torch.randn_like(p) * (step + 1) for p in model.parameters()]
        grads[-1] = None if step % 3 == 0 else grads[-1]  # the value head's bias: sometimes no gradient
        lr = 1e-3 * (1 - step / 50)
        update.step(model.parameters(), grads, lr)
        for group in adam.param_groups:
            group["lr"] = lr
        for p, g in zip(reference.parameters(), grads):
            p.grad = g
        adam.step()
        for mine, theirs in zip(model.parameters(), reference.parameters()):
            assert torch.equal(mine, theirs), f"step {step}"
