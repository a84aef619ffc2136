"""Actor-critic network: encoder -> (optional) LSTM core -> policy head and value.

Encoder, core and heads are separate blocks with computed sizes (Sample Factory, TorchBeast). The
model picks them from the environment's spaces (``ActorCritic.from_spaces``): a conv encoder for
images, an MLP for vectors; a categorical head for ``Discrete`` actions, a Gaussian one for ``Box``
actions. The worker, the evaluation and the losses only talk to the head's small interface
(``sample``, ``greedy``, ``log_prob``, ``entropy``, ``to_env``), so no game is special-cased there.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import gymnasium as gym
import numpy as np
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


class MlpEncoder(nn.Module):
    """Two tanh layers for vector observations (the classic-control tutorials' policy network)."""

    def __init__(self, obs_dim: int, out_dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, out_dim), nn.Tanh(), nn.Linear(out_dim, out_dim), nn.Tanh())
        for layer in self.net:
            if isinstance(layer, nn.Linear):  # orthogonal sqrt(2), as in the A2C/PPO baselines
                nn.init.orthogonal_(layer.weight, math.sqrt(2))
                nn.init.zeros_(layer.bias)
        self.out_dim = out_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """float (B, D) observations -> (B, out_dim) features."""
        return self.net(obs.float())


def _normalized_columns_(weight: torch.Tensor, std: float) -> None:
    """The A3C-Doom tutorial's initialiser: Gaussian rows rescaled to norm ``std``."""
    with torch.no_grad():
        weight.normal_()
        weight.mul_(std / weight.norm(dim=1, keepdim=True))


class CategoricalHead(nn.Linear):
    """Logits over ``n`` discrete actions. (A Linear subclass, so its weights keep the name ``policy.weight``.)"""

    action_shape: tuple[int, ...] = ()
    action_dtype = torch.long

    def __init__(self, in_dim: int, n: int):
        super().__init__(in_dim, n)
        self.n = n

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One action per row, drawn from softmax(logits)."""
        return torch.multinomial(params.softmax(dim=-1), 1, generator=generator).squeeze(-1)

    def greedy(self, params: torch.Tensor) -> torch.Tensor:
        """The most likely action per row."""
        return params.argmax(dim=-1)

    def log_prob(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a|s) per row."""
        return self.log_prob_and_entropy(params, actions)[0]

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        """Entropy of the action distribution per row."""
        log_probs = params.log_softmax(dim=-1)
        return -(log_probs.exp() * log_probs).sum(-1)

    def log_prob_and_entropy(self, params: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both from one log-softmax (what the update needs)."""
        log_probs = params.log_softmax(dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy

    def to_env(self, action: np.ndarray) -> int:
        """What ``env.step`` takes."""
        return int(action)


class GaussianHead(nn.Module):
    """A diagonal Gaussian: state-dependent mean, learned state-independent log-std (Mnih et al. 2016,
    continuous A3C; the A2C/PPO baselines). Actions are sampled unbounded, so that their log-probability
    is exact, and clipped to the action space's bounds only when handed to the environment."""

    action_dtype = torch.float32

    def __init__(self, in_dim: int, low: Sequence[float], high: Sequence[float], init_log_std: float = 0.0):
        super().__init__()
        dim = len(low)
        self.mean = nn.Linear(in_dim, dim)
        self.log_std = nn.Parameter(torch.full((dim,), float(init_log_std)))
        self._low_np, self._high_np = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.action_shape = (dim,)
        self.dim = dim

    @property
    def weight(self) -> torch.Tensor:  # for the shared initialisation of the last layer
        return self.mean.weight

    @property
    def bias(self) -> torch.Tensor:
        return self.mean.bias

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, H) -> (B, 2D): the means, then the log-stds (one tensor, so the model's outputs keep one shape)."""
        mean = self.mean(h)
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)

    def _split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return params[..., : self.dim], params[..., self.dim :]

    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """mean + std * N(0, 1), unclipped."""
        mean, log_std = self._split(params)
        noise = torch.randn(mean.shape, generator=generator)
        return mean + log_std.exp() * noise

    def greedy(self, params: torch.Tensor) -> torch.Tensor:
        """The mean action."""
        return self._split(params)[0]

    def log_prob(self, params: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Sum over dimensions of the Gaussian log-density."""
        mean, log_std = self._split(params)
        z = (actions - mean) / log_std.exp()
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self, params: torch.Tensor) -> torch.Tensor:
        """Sum over dimensions of 0.5 + 0.5 log(2 pi) + log std."""
        _, log_std = self._split(params)
        return (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)

    def log_prob_and_entropy(self, params: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both, for the update."""
        return self.log_prob(params, actions), self.entropy(params)

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """Clip to the action space's bounds."""
        return np.clip(np.asarray(action, dtype=np.float32), self._low_np, self._high_np)


class ActorCritic(nn.Module):
    """Encoder -> LSTMCell (or nothing) -> (policy parameters, value).

    ``obs_shape`` of three dimensions (C, H, W) gets the conv encoder (uint8 pixels), of one dimension
    the MLP encoder. ``num_actions`` > 0 gives a categorical head; ``action_low``/``action_high`` a
    Gaussian one. ``lstm=False`` drops the recurrent core: the state is then empty and ignored.
    """

    def __init__(self, obs_shape: Sequence[int], num_actions: int = 0, hidden_size: int = 256, *,
                 lstm: bool = True, action_low: Sequence[float] | None = None,
                 action_high: Sequence[float] | None = None):
        super().__init__()
        self.obs_shape = tuple(int(x) for x in obs_shape)
        self.num_actions = int(num_actions)
        self.hidden_size = hidden_size
        self.lstm = bool(lstm)
        self.action_low = None if action_low is None else [float(x) for x in action_low]
        self.action_high = None if action_high is None else [float(x) for x in action_high]
        if len(self.obs_shape) == 3:
            self.encoder: nn.Module = ConvEncoder(self.obs_shape, hidden_size)  # type: ignore[arg-type]
        elif len(self.obs_shape) == 1:
            self.encoder = MlpEncoder(self.obs_shape[0], hidden_size)
        else:
            raise ValueError(f"observations of shape {self.obs_shape} are not supported: "
                             "give images as (C, H, W) or vectors as (D,)")
        self.core = nn.LSTMCell(self.encoder.out_dim, hidden_size) if self.lstm else None
        core_out = hidden_size if self.lstm else self.encoder.out_dim
        if self.action_low is not None:
            if self.num_actions or self.action_high is None or len(self.action_high) != len(self.action_low):
                raise ValueError("a continuous head takes action_low and action_high of one length, no num_actions")
            self.policy: nn.Module = GaussianHead(core_out, self.action_low, self.action_high)
        elif self.num_actions > 0:
            self.policy = CategoricalHead(core_out, self.num_actions)
        else:
            raise ValueError("give num_actions (discrete actions) or action_low/action_high (continuous)")
        self.value = nn.Linear(core_out, 1)
        # Why: a policy head with tiny weights starts out (almost) uniform -- or, for a Gaussian, with
        # its mean near 0 -- so early updates explore instead of locking in whatever action an arbitrary
        # init favoured; the value head starts at unit scale (A3C-Doom tutorial's
        # normalized_columns_initializer(0.01) and (1.0)). Zero biases, and the LSTM's forget-gate bias
        # at 1 so that memory is kept by default (Jozefowicz et al. 2015).
        _normalized_columns_(self.policy.weight, 0.01)
        _normalized_columns_(self.value.weight, 1.0)
        nn.init.zeros_(self.policy.bias)
        nn.init.zeros_(self.value.bias)
        if self.core is not None:
            with torch.no_grad():
                for bias in (self.core.bias_ih, self.core.bias_hh):
                    bias.zero_()
                    bias[hidden_size : 2 * hidden_size].fill_(0.5)  # the two biases add up to 1

    @classmethod
    def from_spaces(cls, observation_space: gym.Space, action_space: gym.Space, hidden_size: int = 256,
                    lstm: bool = True) -> "ActorCritic":
        """The encoder from the observation space, the head from the action space."""
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"observation space {observation_space} is not supported (a Box is needed)")
        if isinstance(action_space, gym.spaces.Discrete):
            return cls(observation_space.shape, int(action_space.n), hidden_size, lstm=lstm)
        if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            return cls(observation_space.shape, 0, hidden_size, lstm=lstm,
                       action_low=action_space.low.tolist(), action_high=action_space.high.tolist())
        raise ValueError(f"action space {action_space} is not supported (Discrete or a 1-D Box)")

    @property
    def action_shape(self) -> tuple[int, ...]:
        """Shape of one action as the head samples it: () for discrete, (D,) for continuous."""
        return self.policy.action_shape

    def initial_state(self, batch_size: int = 1) -> State:
        """Zero (h, c) for ``batch_size`` independent sequences (empty without an LSTM)."""
        zeros = torch.zeros(batch_size, self.hidden_size if self.lstm else 0)
        return zeros, zeros.clone()

    def forward(self, obs: torch.Tensor, state: State, done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, State]:
        """One step. ``done[b]`` = 1 where sequence b starts a new episode: its state is reset first."""
        features = self.encoder(obs)
        if self.core is None:
            return self.policy(features), self.value(features).squeeze(1), state
        keep = (1.0 - done.float()).unsqueeze(1)
        h, c = self.core(features, (state[0] * keep, state[1] * keep))
        return self.policy(h), self.value(h).squeeze(1), (h, c)

    def unroll(self, obs: torch.Tensor, state: State, done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, State]:
        """A whole rollout: obs (T, B, ...), done (T, B) -> policy parameters (T, B, P), values (T, B).

        The encoder sees all T*B observations in one batch; only the LSTM steps one at a time, so that
        the state can be reset wherever an episode ended inside the rollout.
        """
        steps, batch = done.shape
        features = self.encoder(obs.reshape(steps * batch, *obs.shape[2:])).view(steps, batch, -1)
        if self.core is None:
            return self.policy(features), self.value(features).squeeze(2), state
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
        kwargs: dict = {"obs_shape": list(self.obs_shape), "num_actions": self.num_actions,
                        "hidden_size": self.hidden_size, "lstm": self.lstm}
        if self.action_low is not None:
            kwargs.update(action_low=self.action_low, action_high=self.action_high)
        return kwargs

    def describe_action_space(self) -> str:
        """For error messages: '3 discrete actions' or 'a 1-D continuous action'."""
        if self.action_low is not None:
            return f"a {len(self.action_low)}-D continuous action"
        return f"{self.num_actions} discrete actions"
