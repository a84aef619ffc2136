"""Pure functions: generalised advantage estimation, the policy-gradient family's advantages, the loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                gamma: float, gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE (Schulman et al. 2016) over a (T, B) rollout; returns (advantages, returns).

    ``dones[t]`` = 1 where the episode ended at step t: nothing after it is bootstrapped. A rollout
    cut short by the end of the rollout itself bootstraps from ``last_value`` (the value of the state
    after the last step; pass 0 where that state is terminal). A truncated episode (a timeout) is
    not a terminal state: fold ``gamma * V(final observation)`` into its last reward and mark it done,
    as Stable-Baselines3 does. With ``gae_lambda = 1`` the returns are plain bootstrapped n-step returns.
    """
    # The recursion runs over NumPy views of the (T, B) tensors: a few rows of numbers per step, where each
    # torch operator would cost more to dispatch than to compute (the same float arithmetic either way).
    rewards_np, values_np = rewards.detach().numpy(), values.detach().numpy()
    non_terminal = 1.0 - dones.detach().float().numpy()
    dtype = np.result_type(rewards_np, values_np)
    gamma, decay = dtype.type(gamma), dtype.type(gamma * gae_lambda)
    advantages = np.empty(rewards_np.shape, dtype)
    next_advantage = np.zeros(rewards_np.shape[1:], dtype)
    next_value = last_value.detach().numpy().astype(dtype, copy=False)
    for t in reversed(range(rewards_np.shape[0])):
        delta = rewards_np[t] + gamma * next_value * non_terminal[t] - values_np[t]
        next_advantage = delta + decay * non_terminal[t] * next_advantage
        advantages[t] = next_advantage
        next_value = values_np[t]
    advantages_t = torch.from_numpy(advantages)
    return advantages_t, advantages_t + values.detach()


class ReturnNormalizer:
    """Rewards divided by a running standard deviation of the discounted return, so that the critic's targets
    and the advantages keep about unit scale whatever the scenario pays (what gymnasium's ``NormalizeReward``
    and Stable-Baselines3's ``VecNormalize`` do, and Sample Factory's ``--normalize_returns`` aims at).

    One per worker, over its games: each game's discounted return ``G = gamma * G + r`` (reset where its
    episode ended) feeds gymnasium's ``RunningMeanStd`` once per rollout, and the rollout's rewards are divided
    by the standard deviation that includes them. The workers' estimates see the same game, so they agree."""

    def __init__(self, num_envs: int, gamma: float, epsilon: float = 1e-8):
        from gymnasium.wrappers.utils import RunningMeanStd

        self.gamma, self.epsilon = gamma, epsilon
        self.returns = np.zeros(num_envs)  # each game's discounted return so far in its episode
        self.stats = RunningMeanStd(shape=())

    @property
    def std(self) -> float:
        return float(np.sqrt(self.stats.var + self.epsilon))

    def normalize(self, rewards: np.ndarray, dones: np.ndarray, mask: np.ndarray) -> None:
        """Scale a (T, B) rollout's ``rewards`` in place; ``dones[t]`` ends an episode after step t, and
        ``mask`` is 0 where a game was not playing (its steps are left out of the statistics)."""
        seen = np.empty(rewards.shape)
        for t in range(rewards.shape[0]):
            self.returns = self.gamma * self.returns + rewards[t]
            seen[t] = self.returns
            self.returns[dones[t] > 0] = 0.0
        self.stats.update(seen[mask > 0])
        rewards /= rewards.dtype.type(self.std)


ADVANTAGES = ("gae", "returns", "returns-mean")
"""The policy-gradient family, as ``--advantage``: what multiplies grad log pi(a|s).

- ``gae``: the learned critic's generalised advantage (A2C/A3C; ``--gae-lambda 1`` gives n-step returns
  minus V(s)); the only one that trains the value head and bootstraps.
- ``returns``: vanilla policy gradient (REINFORCE, Williams 1992) on the discounted return from each step
  to the end of its episode ("reward to go"); needs whole episodes (``--rollout-len 0``).
- ``returns-mean``: the same minus a constant baseline, the mean of those returns over the batch.
"""


def uses_critic(advantage: str) -> bool:
    """Whether this estimator learns and bootstraps from a value function."""
    return advantage == "gae"


def normalize_advantages(advantages: torch.Tensor, mask: torch.Tensor | None = None,
                         epsilon: float = 1e-8) -> torch.Tensor:
    """Advantages shifted and scaled to mean 0 and standard deviation 1 over the real steps (``mask`` 1;
    default all), as PPO implementations do per minibatch; steps outside the mask are left as they were."""
    # In float64: float32's rounding of a constant batch's mean would leave differences of 1e-8, made ~1 here.
    x = advantages.double()
    weights = torch.ones_like(x) if mask is None else mask.double()
    count = weights.sum().clamp(min=1.0)
    mean = (x * weights).sum() / count
    std = (((x - mean) ** 2 * weights).sum() / count).sqrt()
    return torch.where(weights > 0, (x - mean) / (std + epsilon), x).to(advantages.dtype)


def discounted_returns(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """Monte-Carlo returns G_t = r_t + gamma G_{t+1} over a (T, B) rollout, restarting where ``dones[t]`` = 1
    and taking 0 after the last step (whole episodes: nothing to bootstrap)."""
    zeros = torch.zeros_like(rewards)
    _, returns = compute_gae(rewards, zeros, dones, zeros[0], gamma, 1.0)
    return returns


def estimate_advantages(advantage: str, rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
                        last_value: torch.Tensor, mask: torch.Tensor, gamma: float,
                        gae_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, value targets) of a (T, B) rollout for one of ``ADVANTAGES``; ``mask`` marks real steps."""
    if advantage == "gae":
        return compute_gae(rewards, values, dones, last_value, gamma, gae_lambda)
    returns = discounted_returns(rewards, dones, gamma)
    if advantage == "returns":
        return returns, returns
    if advantage == "returns-mean":
        baseline = (returns * mask).sum() / mask.sum().clamp(min=1)
        return returns - baseline, returns
    raise ValueError(f"unknown advantage estimator '{advantage}'; known: {', '.join(ADVANTAGES)}")


def policy_gradient_loss(log_probs: torch.Tensor, entropy: torch.Tensor, values: torch.Tensor,
                         advantages: torch.Tensor, returns: torch.Tensor, entropy_beta: float,
                         value_coef: float, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """loss = -mean(log pi(a|s) A) - beta mean(entropy) + value_coef mean((R - V)^2) (Mnih et al. 2016).

    All arguments are (N,) over the steps of a rollout; means are taken over the steps where ``mask``
    is 1 (default: all). Advantages and returns are targets: no gradient flows through them. With
    ``value_coef`` 0 (the critic-free estimators) the value head gets no gradient.
    """
    if mask is None:
        mean = torch.mean
    else:
        weights = mask.float()
        count = weights.sum().clamp(min=1.0)

        def mean(x: torch.Tensor) -> torch.Tensor:
            return (x * weights).sum() / count

    policy_loss = -mean(log_probs * advantages.detach())
    entropy_mean = mean(entropy)
    value_loss = mean((returns.detach() - values).pow(2))
    loss = policy_loss - entropy_beta * entropy_mean
    if value_coef:
        loss = loss + value_coef * value_loss
    stats = {
        "losses/policy": policy_loss.item(),
        "losses/value": value_loss.item(),
        "losses/entropy": entropy_mean.item(),
        "losses/total": loss.item(),
        "values/estimate": mean(values.detach()).item(),
        "values/advantage": mean(advantages).item(),
    }
    return loss, stats


def a3c_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, advantages: torch.Tensor,
             returns: torch.Tensor, entropy_beta: float, value_coef: float = 0.5) -> tuple[torch.Tensor, dict]:
    """``policy_gradient_loss`` for a categorical policy given by ``logits`` (N, A)."""
    log_probs = F.log_softmax(logits, dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    action_log_probs = log_probs.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    return policy_gradient_loss(action_log_probs, entropy, values, advantages, returns, entropy_beta, value_coef)
