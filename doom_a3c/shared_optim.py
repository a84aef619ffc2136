"""Adam whose state (moments and step counter) lives in shared memory, for A3C's workers."""

from __future__ import annotations

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

    @property
    def steps(self) -> int:
        """Number of optimizer steps taken so far (the shared counter of the first parameter)."""
        first = next(iter(self.state.values()))
        return int(first["step"].item())
