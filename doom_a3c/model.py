"""Actor-critic network: encoder -> (optional) LSTM core -> policy head and value.

Encoder, core and heads are separate blocks with computed sizes (Sample Factory, TorchBeast). The
model picks them from the environment's spaces (``ActorCritic.from_spaces``): a conv encoder for
images, an MLP for vectors; a categorical head for ``Discrete`` actions, a Gaussian one for ``Box``
actions. The worker, the evaluation and the losses only talk to the head's small interface
(``sample``, ``greedy``, ``log_prob``, ``entropy``, ``to_env``), so no game is special-cased there.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]


class ConvEncoder(nn.Module):
    """The A3C-Doom tutorial's encoder: two strided convolutions and a dense layer, ELU activations.

    Two ways to the same numbers, with the same parameters: ``nn.Conv2d``'s own kernels (oneDNN), or matrix
    products over patches (im2col). The patches win at a few frames (acting in eager PyTorch: 4 of basic's
    frames 0.084 ms against 0.125); at the update's batches (rollout x games) which wins depends on the CPU:
    on one machine the kernels took 15.4 ms over a 120-frame rollout of basic against 10.0 for the patches,
    on another (AVX-512) 1.9 against 2.5, and 3.8 against 11.8 for defend_the_line's colour frames. So a
    batch of ``MEASURE_FROM`` frames or more runs on whichever was faster when this process first met that
    input shape (``_kernels_win``: a few forward and backward passes of each, a few milliseconds once).
    The first layer's patches are a strided view of the uint8 frames (no gradient flows there); the second
    layer's are gathered from the first's channels-last output with a fixed index (its backward a scatter-add).
    """

    MEASURE_FROM = 32  # frames in a batch: below it the patches always win

    def __init__(self, obs_shape: tuple[int, int, int], out_dim: int = 256,
                 pixel_norm: Sequence[float] = (0.0, 255.0), init: str = "torch"):
        """``pixel_norm``: (mean, std), the input is ``(pixels - mean) / std`` (the default: ``pixels / 255``).
        ``init``: "torch" (PyTorch's default initialisation) or "xavier" (Xavier-uniform weights, zero
        biases: ikostrikov's pytorch-a3c)."""
        super().__init__()
        channels, height, width = obs_shape
        self.pixel_mean, self.pixel_std = (float(x) for x in pixel_norm)
        if not self.pixel_std > 0:
            raise ValueError(f"pixel_norm's std must be positive, got {self.pixel_std}")
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=8, stride=4), nn.ELU(),
            nn.Conv2d(16, 32, kernel_size=4, stride=2), nn.ELU(),
            nn.Flatten(),
        )
        conv1, conv2 = self.conv[0], self.conv[2]
        (k1, k2), (s1, s2) = (conv1.kernel_size[0], conv2.kernel_size[0]), (conv1.stride[0], conv2.stride[0])
        self._grid1 = _out_size(height, k1, s1), _out_size(width, k1, s1)
        self._grid2 = _out_size(self._grid1[0], k2, s2), _out_size(self._grid1[1], k2, s2)
        if min(self._grid2) < 1:
            raise ValueError(f"observations of shape {tuple(obs_shape)} are too small for the conv encoder "
                             "(at least 20x20 is needed)")
        # Not saved with the weights: computed from the shapes, so checkpoints keep nn.Conv2d's layout.
        self.register_buffer("_patches2", _patch_index(conv1.out_channels, *self._grid1, k2, s2), persistent=False)
        flat = conv2.out_channels * self._grid2[0] * self._grid2[1]
        self.fc = nn.Sequential(nn.Linear(flat, out_dim), nn.ELU())
        self.out_dim = out_dim
        if init == "xavier":
            for layer in (conv1, conv2, self.fc[0]):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        elif init != "torch":
            raise ValueError(f"unknown init '{init}'; known: {', '.join(INITS)}")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) pixels -> (B, out_dim) features: ``self.conv`` then ``self.fc`` on
        ``(obs - pixel_mean) / pixel_std`` (by default ``obs / 255``),
        by the kernels or the patch products, whichever is faster here for this batch (to float rounding)."""
        if obs.shape[0] >= self.MEASURE_FROM and _kernels_win(self, obs):
            return self.forward_kernels(obs)
        return self.forward_patches(obs)

    def forward_kernels(self, obs: torch.Tensor) -> torch.Tensor:
        """``forward`` by ``nn.Conv2d``'s own kernels."""
        return self.fc(self.conv((obs.to(self.fc[0].weight.dtype) - self.pixel_mean) / self.pixel_std))

    def forward_patches(self, obs: torch.Tensor) -> torch.Tensor:
        """``forward`` by patch products."""
        conv1, conv2 = self.conv[0], self.conv[2]
        batch, (h1, w1), (h2, w2) = obs.shape[0], self._grid1, self._grid2
        s0, s1, s2, s3 = obs.stride()
        k1, st1 = conv1.kernel_size[0], conv1.stride[0]
        # (B, H1, W1, C, 8, 8) windows of the frames, in the order of conv1.weight's (C, kh, kw).
        patches = obs.as_strided((batch, h1, w1, obs.shape[1], k1, k1), (s0, st1 * s2, st1 * s3, s1, s2, s3))
        patches = patches.reshape(batch * h1 * w1, -1).to(conv1.weight.dtype)
        weight1 = conv1.weight.view(conv1.out_channels, -1)
        # (pixels - mean) / std through conv1: the pixels scaled by 1 / std, the mean folded into the bias.
        bias1 = conv1.bias - weight1.sum(1) * (self.pixel_mean / self.pixel_std) if self.pixel_mean else conv1.bias
        x = F.elu(torch.addmm(bias1, patches, weight1.t(), alpha=1 / self.pixel_std))
        # x: (B*H1*W1, C1) channels-last; conv2's windows gathered in the order of its weight's (C, kh, kw).
        patches = x.view(batch, -1).index_select(1, self._patches2).view(batch * h2 * w2, -1)
        x = F.elu(torch.addmm(conv2.bias, patches, conv2.weight.view(conv2.out_channels, -1).t()))
        # Back to nn.Flatten's (C, H, W) order for the dense layer (a copy of B x 288 numbers).
        x = x.view(batch, h2 * w2, conv2.out_channels).transpose(1, 2).reshape(batch, -1)
        return self.fc(x)


INITS = ("torch", "xavier")

# (input shape, input dtype, weights dtype, with gradients) -> whether the kernels were faster; once per process.
_KERNELS_WIN: dict[tuple, bool] = {}


def _kernels_win(encoder: ConvEncoder, obs: torch.Tensor) -> bool:
    """Whether ``encoder.forward_kernels`` beats ``forward_patches`` on batches like ``obs`` here: the best of
    3 timed runs of each (forward, and backward to the weights where gradients are on), measured the first
    time this process meets the input shape, then remembered."""
    grad = torch.is_grad_enabled() and encoder.fc[0].weight.requires_grad
    key = (tuple(obs.shape[1:]), obs.dtype, encoder.fc[0].weight.dtype, grad)
    if key not in _KERNELS_WIN:
        params = [p for p in encoder.parameters() if p.requires_grad]

        def seconds(path) -> float:
            start = time.perf_counter()
            out = path(obs)
            if grad:  # the weights' gradients only: nothing accumulates into .grad
                torch.autograd.grad(out.sum(), params)
            return time.perf_counter() - start

        runs = {path: [] for path in (encoder.forward_kernels, encoder.forward_patches)}
        for _ in range(4):  # alternated, the first round a warm-up
            for path, times in runs.items():
                times.append(seconds(path))
        kernels, patches = (min(times[1:]) for times in runs.values())
        _KERNELS_WIN[key] = kernels < patches
    return _KERNELS_WIN[key]


def _out_size(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


def _patch_index(channels: int, height: int, width: int, kernel: int, stride: int) -> torch.Tensor:
    """For a channels-last (H, W, C) map flattened per sample: the positions of every output pixel's window,
    ordered (out_y, out_x, c, kh, kw) like a conv weight's (C, kh, kw)."""
    out_h, out_w = _out_size(height, kernel, stride), _out_size(width, kernel, stride)
    oy = torch.arange(out_h).view(-1, 1, 1, 1, 1) * stride
    ox = torch.arange(out_w).view(1, -1, 1, 1, 1) * stride
    c = torch.arange(channels).view(1, 1, -1, 1, 1)
    ky = torch.arange(kernel).view(1, 1, 1, -1, 1)
    kx = torch.arange(kernel).view(1, 1, 1, 1, -1)
    return (((oy + ky) * width + (ox + kx)) * channels + c).reshape(-1)


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
        """One action per row, drawn from softmax(logits): the Gumbel-max trick, argmax(logits + G) with
        G = -log(E), E ~ Exp(1), which is distributed exactly so (three small operators: a third of the
        time of softmax and ``torch.multinomial`` at 4 rows)."""
        noise = torch.empty_like(params).exponential_(generator=generator).log_()
        return (params - noise).argmax(dim=-1)

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


class _LSTMUnroll(torch.autograd.Function):
    """An LSTM over a whole rollout, with the state reset where an episode starts, and its backward
    through time written out (the arithmetic of ``nn.LSTMCell`` step after step).

    Why: autograd records each step's cell as a dozen small operators and computes each step's weight
    gradient as a matrix product of its own (4 games x 512 gates). Here the input projection of every step
    is one product before the loop (``xproj``), each step of the backward is five small operators (the
    gates' local derivatives are formed for all steps at once before it), and the recurrent weights'
    gradient is one product over all T x B steps after it.

    ``xproj`` (T, B, 4H): x W_ih^T + b_ih + b_hh; ``keep`` (T, B, 1): 0 where step t starts an episode;
    gates in ``nn.LSTMCell``'s order (input, forget, cell, output). ``recorded``, optional: the (h, c)
    each step started from (T, B, H each, before the reset), as the acting pass computed them with these
    same weights; given, the forward needs no loop either (every step's gates in one product). Returns
    every step's h (T, B, H) and the last (h, c).
    """

    @staticmethod
    def forward(ctx, xproj, keep, h0, c0, weight_hh, h_rec=None, c_rec=None):
        steps, batch, four_h = xproj.shape
        hidden = four_h // 4
        if h_rec is not None:
            h_in, c_in = h_rec * keep, c_rec * keep
            gates = torch.addmm(xproj.view(-1, four_h), h_in.view(-1, hidden), weight_hh.t()).view_as(xproj)
            _activate(gates, hidden)
            i, f, z, o = gates.chunk(4, 2)
            cells = torch.addcmul(f * c_in, i, z)
            tanh_c = cells.tanh()
            hs = o * tanh_c
        else:
            gates = torch.empty_like(xproj)  # after their nonlinearities
            h_in = xproj.new_empty(steps, batch, hidden)  # the reset state each step starts from
            c_in = xproj.new_empty(steps, batch, hidden)
            cells = xproj.new_empty(steps, batch, hidden)
            hs = xproj.new_empty(steps, batch, hidden)
            w_t = weight_hh.t()
            h, c = h0, c0
            for t in range(steps):
                torch.mul(h, keep[t], out=h_in[t])
                torch.mul(c, keep[t], out=c_in[t])
                g = gates[t]
                torch.addmm(xproj[t], h_in[t], w_t, out=g)
                _activate(g, hidden)
                i, f, z, o = g.chunk(4, 1)
                c = cells[t]
                torch.addcmul(f * c_in[t], i, z, out=c)
                h = hs[t]
                torch.mul(o, c.tanh(), out=h)
            tanh_c = cells.tanh()
        ctx.save_for_backward(keep, weight_hh, gates, h_in, c_in, tanh_c)
        return hs, hs[-1].clone(), cells[-1].clone()

    @staticmethod
    def backward(ctx, d_hs, d_h_last, d_c_last):
        keep, weight_hh, gates, h_in, c_in, tanh_c = ctx.saved_tensors
        steps, batch, four_h = gates.shape
        hidden = four_h // 4
        i, f, z, o = gates.chunk(4, 2)
        # Every step's local derivatives at once: dL/dc_t = carried + dL/dh_t * o(1 - tanh^2 c), and from
        # dL/dc_t the pre-activations of the input, forget and cell gates are dL/dc_t times `by_dc`; the
        # output gate's is dL/dh_t times `by_dh`.
        dc_by_dh = o * (1 - tanh_c * tanh_c)
        by_dc = torch.stack((z * i * (1 - i), c_in * f * (1 - f), i * (1 - z * z)), 2)  # (T, B, 3, H)
        by_dh = tanh_c * o * (1 - o)
        carry_c = f * keep  # dL/dc_{t-1} = dL/dc_t * f_t, zero across an episode start
        resets = (keep.view(steps, batch) == 0).any(1).tolist()
        d_gates = torch.empty_like(gates)  # before the nonlinearities
        d_gates4 = d_gates.view(steps, batch, 4, hidden)
        d_h = d_h_last if d_h_last is not None else gates.new_zeros(batch, hidden)
        d_c = d_c_last if d_c_last is not None else gates.new_zeros(batch, hidden)
        if d_hs is not None:
            d_h = d_h + d_hs[-1]
        for t in reversed(range(steps)):
            if t < steps - 1:  # dL/dh_t: from this step's output and through step t+1's recurrent product
                into = d_gates[t + 1] * keep[t + 1] if resets[t + 1] else d_gates[t + 1]
                d_h = torch.addmm(d_hs[t], into, weight_hh) if d_hs is not None else torch.mm(into, weight_hh)
            d_c = torch.addcmul(d_c, d_h, dc_by_dh[t])
            torch.mul(d_c.unsqueeze(1), by_dc[t], out=d_gates4[t, :, :3])
            torch.mul(d_h, by_dh[t], out=d_gates4[t, :, 3])
            d_c = d_c * carry_c[t]
        # The worker's initial state is a buffer with no gradient: its product is skipped there.
        d_h0 = torch.mm(d_gates[0], weight_hh) * keep[0] if ctx.needs_input_grad[2] else None
        d_c0 = d_c if ctx.needs_input_grad[3] else None
        flat = d_gates.view(steps * batch, four_h)
        d_weight = torch.mm(flat.t(), h_in.view(steps * batch, hidden)) if ctx.needs_input_grad[4] else None
        return d_gates, None, d_h0, d_c0, d_weight, None, None


def _activate(gates: torch.Tensor, hidden: int) -> None:
    """The LSTM's gate nonlinearities in place, over the last dimension: sigmoid for the input, forget and
    output gates, tanh for the cell's input."""
    gates[..., : 2 * hidden].sigmoid_()
    gates[..., 2 * hidden : 3 * hidden].tanh_()
    gates[..., 3 * hidden :].sigmoid_()


class ActorCritic(nn.Module):
    """Encoder -> LSTMCell (or nothing) -> (policy parameters, value).

    ``obs_shape`` of three dimensions (C, H, W) gets the conv encoder (uint8 pixels), of one dimension
    the MLP encoder. ``num_actions`` > 0 gives a categorical head; ``action_low``/``action_high`` a
    Gaussian one. ``lstm=False`` drops the recurrent core: the state is then empty and ignored.
    """

    def __init__(self, obs_shape: Sequence[int], num_actions: int = 0, hidden_size: int = 256, *,
                 lstm: bool = True, action_low: Sequence[float] | None = None,
                 action_high: Sequence[float] | None = None, pixel_norm: Sequence[float] = (0.0, 255.0),
                 init: str = "torch"):
        super().__init__()
        self.obs_shape = tuple(int(x) for x in obs_shape)
        self.num_actions = int(num_actions)
        self.hidden_size = hidden_size
        self.lstm = bool(lstm)
        self.action_low = None if action_low is None else [float(x) for x in action_low]
        self.action_high = None if action_high is None else [float(x) for x in action_high]
        self.pixel_norm = [float(x) for x in pixel_norm]
        if len(self.obs_shape) == 3:
            self.encoder: nn.Module = ConvEncoder(self.obs_shape, hidden_size, self.pixel_norm,  # type: ignore[arg-type]
                                                  init)
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
                    lstm: bool = True, **kwargs) -> "ActorCritic":
        """The encoder from the observation space, the head from the action space; ``kwargs``: the encoder's
        ``pixel_norm`` and ``init``."""
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"observation space {observation_space} is not supported (a Box is needed)")
        if isinstance(action_space, gym.spaces.Discrete):
            return cls(observation_space.shape, int(action_space.n), hidden_size, lstm=lstm, **kwargs)
        if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            return cls(observation_space.shape, 0, hidden_size, lstm=lstm,
                       action_low=action_space.low.tolist(), action_high=action_space.high.tolist(), **kwargs)
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

    def unroll(self, obs: torch.Tensor, state: State, done: torch.Tensor,
               recorded: State | None = None) -> tuple[torch.Tensor, torch.Tensor, State]:
        """A whole rollout: obs (T, B, ...), done (T, B) -> policy parameters (T, B, P), values (T, B).

        The encoder sees all T*B observations in one batch, and so does the LSTM's input projection; only
        the recurrence steps one at a time (``_LSTMUnroll``), so that the state can be reset wherever an
        episode ended inside the rollout. ``recorded``: the (h, c) each step started from (T, B, H each),
        as acting computed them with these same weights (the worker keeps them); with them the forward
        computes every step's gates at once, and ``state`` is ``recorded``'s first step.
        """
        steps, batch = done.shape
        features = self.encoder(obs.reshape(steps * batch, *obs.shape[2:])).view(steps, batch, -1)
        if self.core is None:
            return self.policy(features), self.value(features).squeeze(2), state
        keep = (1.0 - done.float()).unsqueeze(2)
        core = self.core
        xproj = F.linear(features, core.weight_ih, core.bias_ih + core.bias_hh)
        hidden, h, c = _LSTMUnroll.apply(xproj, keep, state[0], state[1], core.weight_hh,
                                         *(recorded if recorded is not None else ()))
        return self.policy(hidden), self.value(hidden).squeeze(2), (h, c)

    def model_kwargs(self) -> dict:
        """The constructor arguments, saved in checkpoints so a model can be rebuilt to match."""
        kwargs: dict = {"obs_shape": list(self.obs_shape), "num_actions": self.num_actions,
                        "hidden_size": self.hidden_size, "lstm": self.lstm}
        if self.action_low is not None:
            kwargs.update(action_low=self.action_low, action_high=self.action_high)
        if self.pixel_norm != [0.0, 255.0]:  # (older checkpoints, without it, rebuild the same model)
            kwargs["pixel_norm"] = self.pixel_norm
        return kwargs

    def describe_action_space(self) -> str:
        """For error messages: '3 discrete actions' or 'a 1-D continuous action'."""
        if self.action_low is not None:
            return f"a {len(self.action_low)}-D continuous action"
        return f"{self.num_actions} discrete actions"
