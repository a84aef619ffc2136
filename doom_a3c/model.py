"""Actor-critic network: conv encoder -> LSTM core -> policy logits and value.

Encoder, core and heads are separate blocks with computed sizes (Sample Factory, TorchBeast), so a
different encoder (an MLP for vector observations) can be swapped in without touching the rest.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]


@contextlib.contextmanager
def acting_mode() -> Iterator[None]:
    """For forward passes over a few frames at a time (acting, evaluating): oneDNN convolutions off.

    oneDNN spends about 0.1 ms setting up each convolution call, more than the whole computation on
    a batch of a few small frames; PyTorch's plain kernels are about twice as fast there. Updates,
    which see rollout_len x games frames in one batch, are faster with oneDNN, so it is turned back on.
    """
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


class ConvEncoder(nn.Module):
    """The A3C-Doom tutorial's encoder: two strided convolutions and a dense layer, ELU activations."""

    def __init__(self, obs_shape: tuple[int, int, int], out_dim: int = 256):
        super().__init__()
        channels = obs_shape[0]
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=8, stride=4), nn.ELU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2), nn.ELU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, *obs_shape)).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, out_dim), nn.ELU())
        self.out_dim = out_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) pixels -> (B, out_dim) features."""
        return self.fc(self.conv(obs.float() / 255.0))


def _normalized_columns_(weight: torch.Tensor, std: float) -> None:
    """The A3C-Doom tutorial's initialiser: Gaussian rows rescaled to norm ``std``."""
    with torch.no_grad():
        weight.normal_()
        weight.mul_(std / weight.norm(dim=1, keepdim=True))


class ActorCritic(nn.Module):
    """Conv encoder -> LSTMCell -> (policy logits, value)."""

    def __init__(self, obs_shape: tuple[int, int, int], num_actions: int, hidden_size: int = 256):
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.num_actions = num_actions
        self.hidden_size = hidden_size
        self.encoder = ConvEncoder(self.obs_shape, hidden_size)
        self.core = nn.LSTMCell(self.encoder.out_dim, hidden_size)
        self.policy = nn.Linear(hidden_size, num_actions)
        self.value = nn.Linear(hidden_size, 1)
        # Why: a policy head with tiny weights starts out (almost) uniform, so early updates explore
        # instead of locking in whatever action an arbitrary init favoured; the value head starts at
        # unit scale (A3C-Doom tutorial's normalized_columns_initializer(0.01) and (1.0)). Zero biases,
        # and the LSTM's forget-gate bias at 1 so that memory is kept by default (Jozefowicz et al. 2015).
        _normalized_columns_(self.policy.weight, 0.01)
        _normalized_columns_(self.value.weight, 1.0)
        nn.init.zeros_(self.policy.bias)
        nn.init.zeros_(self.value.bias)
        with torch.no_grad():
            for bias in (self.core.bias_ih, self.core.bias_hh):
                bias.zero_()
                bias[hidden_size : 2 * hidden_size].fill_(0.5)  # the two biases add up to 1

    def initial_state(self, batch_size: int = 1) -> State:
        """Zero (h, c) for ``batch_size`` independent sequences."""
        zeros = torch.zeros(batch_size, self.hidden_size)
        return zeros, zeros.clone()

    def forward(self, obs: torch.Tensor, state: State, done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, State]:
        """One step. ``done[b]`` = 1 where sequence b starts a new episode: its state is reset first."""
        keep = (1.0 - done.float()).unsqueeze(1)
        h, c = self.core(self.encoder(obs), (state[0] * keep, state[1] * keep))
        return self.policy(h), self.value(h).squeeze(1), (h, c)

    def unroll(self, obs: torch.Tensor, state: State, done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, State]:
        """A whole rollout: obs (T, B, C, H, W), done (T, B) -> logits (T, B, A), values (T, B).

        The encoder sees all T*B frames in one batch; only the LSTM steps one at a time, so that the
        state can be reset wherever an episode ended inside the rollout.
        """
        steps, batch = done.shape
        features = self.encoder(obs.reshape(steps * batch, *obs.shape[2:])).view(steps, batch, -1)
        keep = (1.0 - done.float()).unsqueeze(2)
        h, c = state
        outputs = []
        for t in range(steps):
            h, c = self.core(features[t], (h * keep[t], c * keep[t]))
            outputs.append(h)
        hidden = torch.stack(outputs)
        return self.policy(hidden), self.value(hidden).squeeze(2), (h, c)

    def model_kwargs(self) -> dict:
        """The constructor arguments, saved in checkpoints so a model can be rebuilt to match."""
        return {"obs_shape": list(self.obs_shape), "num_actions": self.num_actions,
                "hidden_size": self.hidden_size}
