"""Pure functions: generalised advantage estimation and the A3C loss."""

from __future__ import annotations

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
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(steps)):
        next_non_terminal = 1.0 - dones[t].float()
        delta = rewards[t] + gamma * next_value * next_non_terminal - values[t]
        next_advantage = delta + gamma * gae_lambda * next_non_terminal * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values


def a3c_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, advantages: torch.Tensor,
             returns: torch.Tensor, entropy_beta: float, value_coef: float = 0.5) -> tuple[torch.Tensor, dict]:
    """loss = policy loss - beta * entropy + value_coef * value loss (Mnih et al. 2016), averaged over steps.

    ``logits`` (N, A), ``values``/``actions``/``advantages``/``returns`` (N,). Advantages and returns are
    targets: no gradient flows through them.
    """
    log_probs = F.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    entropy = -(probs * log_probs).sum(-1).mean()
    action_log_probs = log_probs.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    policy_loss = -(action_log_probs * advantages.detach()).mean()
    value_loss = (returns.detach() - values).pow(2).mean()
    loss = policy_loss - entropy_beta * entropy + value_coef * value_loss
    stats = {
        "losses/policy": policy_loss.item(),
        "losses/value": value_loss.item(),
        "losses/entropy": entropy.item(),
        "losses/total": loss.item(),
        "values/estimate": values.detach().mean().item(),
        "values/advantage": advantages.mean().item(),
    }
    return loss, stats
