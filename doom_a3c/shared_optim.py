"""Adam whose state (moments and step counter) lives in shared memory, for A3C's workers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch


class SharedAdam(torch.optim.Adam):
    """torch.optim.Adam with its state created up front and moved to shared memory.

    Every worker process holds a handle to the same tensors, so the first and second moments and the
    ``step`` counter used for bias correction are one set for all workers (a per-process step counter
    would make the bias correction wrong). Call ``share_memory()`` again after ``load_state_dict``,
    which replaces the state tensors with fresh, unshared ones.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-4, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        # The single-tensor, non-fused implementation updates the step counter in place, which is
        # what keeps it shared; capturable/fused variants are not needed on the CPU.
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        self.share_memory()

    def share_memory(self) -> "SharedAdam":
        """Move every state tensor to shared memory (in place; handles survive pickling to workers)."""
        for state in self.state.values():
            for value in state.values():
                if torch.is_tensor(value):
                    value.share_memory_()
        return self

    def load_state_dict(self, state_dict: dict) -> None:
        """Load, then share the loaded state so workers started afterwards see it."""
        super().load_state_dict(state_dict)
        self.share_memory()

    def for_workers(self) -> "AdamUpdate":
        """What a worker process needs to step this optimizer: its shared state, without the Optimizer.

        A torch Optimizer imports torch._dynamo (and sympy) the first time it is built or stepped: 68 MB
        resident in every process that does, which made the workers a fifth of a training run's memory.
        Call after ``load_state_dict`` (which replaces the state tensors)."""
        group = self.param_groups[0]
        states = [self.state[p] for p in group["params"]]
        return AdamUpdate([s["step"] for s in states], [s["exp_avg"] for s in states],
                          [s["exp_avg_sq"] for s in states], group["lr"], group["betas"], group["eps"])

    @property
    def steps(self) -> int:
        """Number of optimizer steps taken so far (the shared counter of the first parameter)."""
        first = next(iter(self.state.values()))
        return int(first["step"].item())


@dataclass
class AdamUpdate:
    """One Adam step on shared state, the same arithmetic as ``torch.optim.Adam``'s single-tensor path
    (no weight decay, no AMSGrad), so a worker's step equals the Optimizer's bit for bit."""

    steps: list[torch.Tensor]
    exp_avgs: list[torch.Tensor]
    exp_avg_sqs: list[torch.Tensor]
    lr: float
    betas: tuple[float, float]
    eps: float

    @torch.no_grad()
    def step(self, params: Iterable[torch.Tensor], grads: Iterable[torch.Tensor | None],
             lr: float | None = None) -> None:
        """Update the shared ``params`` in place with ``grads`` (one per parameter, in order); a parameter
        whose gradient is None is skipped, as Adam skips it."""
        lr = self.lr if lr is None else lr
        beta1, beta2 = self.betas
        # Every parameter at once (torch._foreach_*: one operator per line below instead of one per
        # parameter), the same elementwise arithmetic as the single-tensor path, in the same order.
        live = [(p, g, s, m, v) for p, g, s, m, v in zip(params, grads, self.steps, self.exp_avgs, self.exp_avg_sqs)
                if g is not None]
        if not live:
            return
        params_, grads_, steps, exp_avgs, exp_avg_sqs = (list(x) for x in zip(*live))
        torch._foreach_add_(steps, 1)
        torch._foreach_lerp_(exp_avgs, grads_, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads_, grads_, value=1 - beta2)
        counts = [step.item() for step in steps]
        bias_correction2_sqrt = [(1 - beta2**step) ** 0.5 for step in counts]
        denoms = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denoms, bias_correction2_sqrt)
        torch._foreach_add_(denoms, self.eps)
        torch._foreach_addcdiv_(params_, exp_avgs, denoms, [-(lr / (1 - beta1**step)) for step in counts])
