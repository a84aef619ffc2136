"""GAE, bootstrapped returns and the A3C loss against slow, obvious references."""

from __future__ import annotations

import math

import pytest
import torch

from doom_a3c.returns import a3c_loss, compute_gae


def reference_gae(rewards, values, dones, last_value, gamma, lam):
    """Straight from the definitions, one sequence and one step at a time, in plain Python floats."""
    steps = len(rewards)
    advantages = [0.0] * steps
    for t in range(steps):
        # A_t = sum_k (gamma*lam)^k delta_{t+k}, stopping after the step where an episode ends.
        total, discount = 0.0, 1.0
        for k in range(t, steps):
            next_value = 0.0 if dones[k] else (values[k + 1] if k + 1 < steps else last_value)
            delta = rewards[k] + gamma * next_value - values[k]
            total += discount * delta
            if dones[k]:
                break
            discount *= gamma * lam
        advantages[t] = total
    return advantages, [a + v for a, v in zip(advantages, values)]


def reference_nstep_returns(rewards, dones, last_value, gamma):
    """Bootstrapped n-step returns: R_t = r_t + gamma * R_{t+1}, R_T = V(s_T), 0 after a terminal."""
    returns, running = [0.0] * len(rewards), last_value
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running * (0.0 if dones[t] else 1.0)
        returns[t] = running
    return returns


def _random_rollout(generator, steps=30, batch=3):
    rewards = torch.randn(steps, batch, generator=generator)
    values = torch.randn(steps, batch, generator=generator)
    dones = (torch.rand(steps, batch, generator=generator) < 0.15).float()
    last_value = torch.randn(batch, generator=generator)
    return rewards, values, dones, last_value


@pytest.mark.parametrize("gamma,lam", [(0.99, 1.0), (0.99, 0.95), (0.9, 0.0), (1.0, 0.5)])
def test_gae_matches_reference(gamma, lam):
    generator = torch.Generator().manual_seed(0)
    rewards, values, dones, last_value = _random_rollout(generator)
    advantages, returns = compute_gae(rewards, values, dones, last_value, gamma, lam)
    assert advantages.shape == returns.shape == rewards.shape
    for b in range(rewards.shape[1]):
        adv_ref, ret_ref = reference_gae(rewards[:, b].tolist(), values[:, b].tolist(), dones[:, b].tolist(),
                                         float(last_value[b]), gamma, lam)
        assert advantages[:, b].tolist() == pytest.approx(adv_ref, abs=1e-5)
        assert returns[:, b].tolist() == pytest.approx(ret_ref, abs=1e-5)


def test_lambda_one_gives_bootstrapped_nstep_returns():
    generator = torch.Generator().manual_seed(1)
    rewards, values, dones, last_value = _random_rollout(generator, steps=20, batch=2)
    _, returns = compute_gae(rewards, values, dones, last_value, 0.97, 1.0)
    for b in range(2):
        expected = reference_nstep_returns(rewards[:, b].tolist(), dones[:, b].tolist(), float(last_value[b]), 0.97)
        assert returns[:, b].tolist() == pytest.approx(expected, abs=1e-5)


def test_rollout_without_episode_end_bootstraps_from_last_value():
    rewards = torch.tensor([[1.0], [1.0], [1.0]])
    values = torch.zeros(3, 1)
    dones = torch.zeros(3, 1)
    _, returns = compute_gae(rewards, values, dones, torch.tensor([10.0]), 0.5, 1.0)
    # R_2 = 1 + 0.5*10 = 6, R_1 = 1 + 0.5*6 = 4, R_0 = 1 + 0.5*4 = 3
    assert returns[:, 0].tolist() == pytest.approx([3.0, 4.0, 6.0])


def test_terminal_step_does_not_bootstrap_across_episodes():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.0], [100.0], [0.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the episode ends at step 1; step 2 is a new episode
    _, returns = compute_gae(rewards, values, dones, torch.tensor([7.0]), 0.5, 1.0)
    assert returns[1, 0] == pytest.approx(2.0)  # nothing after the terminal step, not V(s_2), not 7
    assert returns[0, 0] == pytest.approx(1.0 + 0.5 * 2.0)
    assert returns[2, 0] == pytest.approx(3.0 + 0.5 * 7.0)


def test_truncation_bootstraps_from_the_value_where_it_was_cut():
    """A timeout folds gamma * V(final obs) into its last reward and is marked done (the worker does
    this): the return then differs from a real terminal by exactly that bootstrap."""
    gamma, v_final = 0.9, 5.0
    rewards = torch.tensor([[1.0], [1.0]])
    values = torch.zeros(2, 1)
    dones = torch.tensor([[0.0], [1.0]])
    _, terminal = compute_gae(rewards, values, dones, torch.tensor([0.0]), gamma, 1.0)
    truncated_rewards = rewards.clone()
    truncated_rewards[1, 0] += gamma * v_final
    _, truncated = compute_gae(truncated_rewards, values, dones, torch.tensor([123.0]), gamma, 1.0)
    assert terminal[:, 0].tolist() == pytest.approx([1.9, 1.0])
    assert truncated[:, 0].tolist() == pytest.approx([1.0 + gamma * (1.0 + gamma * v_final), 1.0 + gamma * v_final])


def test_a3c_loss_matches_hand_computation():
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0]], requires_grad=True)
    values = torch.tensor([0.5, -1.0], requires_grad=True)
    actions = torch.tensor([1, 0])
    advantages = torch.tensor([2.0, -1.0])
    returns = torch.tensor([1.5, 0.0])
    beta, value_coef = 0.01, 0.5
    loss, stats = a3c_loss(logits, values, actions, advantages, returns, beta, value_coef)

    def log_softmax(row):
        top = math.log(sum(math.exp(x) for x in row))
        return [x - top for x in row]

    lp = [log_softmax([0.0, 1.0]), log_softmax([2.0, 0.0])]
    policy = -(lp[0][1] * 2.0 + lp[1][0] * -1.0) / 2
    entropy = -sum(math.exp(x) * x for row in lp for x in row) / 2
    value = ((1.5 - 0.5) ** 2 + (0.0 + 1.0) ** 2) / 2
    assert stats["losses/policy"] == pytest.approx(policy, rel=1e-5)
    assert stats["losses/entropy"] == pytest.approx(entropy, rel=1e-5)
    assert stats["losses/value"] == pytest.approx(value, rel=1e-5)
    assert loss.item() == pytest.approx(policy - beta * entropy + value_coef * value, rel=1e-5)
    loss.backward()
    # Advantages and returns are targets: the value gradient is value_coef * 2 * (v - R) / N.
    assert values.grad.tolist() == pytest.approx([0.5 * 2 * (0.5 - 1.5) / 2, 0.5 * 2 * (-1.0 - 0.0) / 2])


# A tiny batch: one game, 4 steps, the episode ending at step 2 and a new one starting at step 3.
_REWARDS = torch.tensor([[1.0], [0.0], [2.0], [3.0]])
_DONES = torch.tensor([[0.0], [0.0], [1.0], [0.0]])
_VALUES = torch.tensor([[0.5], [0.2], [1.0], [0.4]])
_LOG_PROBS = torch.tensor([-0.1, -0.7, -0.3, -1.2])
_ENTROPY = torch.tensor([0.6, 0.5, 0.4, 0.3])
GAMMA = 0.5


def test_discounted_returns_restart_at_episode_ends():
    from doom_a3c.returns import discounted_returns

    returns = discounted_returns(_REWARDS, _DONES, GAMMA)
    # G2 = 2, G1 = 0 + 0.5*2 = 1, G0 = 1 + 0.5*1 = 1.5; the last step has nothing after it: G3 = 3.
    assert returns.squeeze(1).tolist() == [1.5, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("advantage", ["returns", "returns-mean", "gae"])
@pytest.mark.parametrize("beta", [0.0, 0.01])
def test_each_policy_gradient_variant_loss_matches_hand_computation(advantage, beta):
    from doom_a3c.returns import estimate_advantages, policy_gradient_loss, uses_critic

    mask = torch.tensor([[1.0], [1.0], [1.0], [0.0]]) if advantage != "gae" else torch.ones(4, 1)
    last_value = torch.tensor([0.8])
    adv, ret = estimate_advantages(advantage, _REWARDS, _VALUES, _DONES, last_value, mask, GAMMA, 1.0)
    value_coef = 0.5 if uses_critic(advantage) else 0.0
    loss, stats = policy_gradient_loss(_LOG_PROBS, _ENTROPY, _VALUES.flatten(), adv.flatten(), ret.flatten(),
                                       beta, value_coef, mask.flatten())
    lp, ent = _LOG_PROBS.tolist(), _ENTROPY.tolist()
    if advantage == "returns":  # vanilla policy gradient: the return from each step; step 3 masked out
        a = [1.5, 1.0, 2.0]
        expected = -(lp[0] * a[0] + lp[1] * a[1] + lp[2] * a[2]) / 3 - beta * (ent[0] + ent[1] + ent[2]) / 3
    elif advantage == "returns-mean":  # minus the mean return of the real steps, 1.5
        a = [0.0, -0.5, 0.5]
        expected = -(lp[0] * a[0] + lp[1] * a[1] + lp[2] * a[2]) / 3 - beta * (ent[0] + ent[1] + ent[2]) / 3
    else:  # n-step returns bootstrapped from V(s_4) = 0.8 after the new episode's step, minus V(s)
        r = [1.5, 1.0, 2.0, 3.0 + 0.5 * 0.8]
        v = [0.5, 0.2, 1.0, 0.4]
        a = [r[i] - v[i] for i in range(4)]
        value = sum((r[i] - v[i]) ** 2 for i in range(4)) / 4
        expected = -sum(lp[i] * a[i] for i in range(4)) / 4 - beta * sum(ent) / 4 + 0.5 * value
        assert stats["losses/value"] == pytest.approx(value)
    assert adv.flatten()[: len(a)].tolist() == pytest.approx(a)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_critic_free_variants_give_the_value_head_no_gradient():
    from doom_a3c.returns import policy_gradient_loss

    values = _VALUES.flatten().clone().requires_grad_(True)
    log_probs = _LOG_PROBS.clone().requires_grad_(True)
    loss, _ = policy_gradient_loss(log_probs, _ENTROPY, values, torch.ones(4), torch.ones(4), 0.01, 0.0)
    loss.backward()
    assert values.grad is None and log_probs.grad is not None


def test_normalized_advantages_have_mean_zero_and_unit_std_over_the_real_steps_only():
    from doom_a3c.returns import normalize_advantages

    advantages = torch.tensor([[0.5, 100.0], [1.5, -3.0], [2.5, 7.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])  # the first step of game 2 was not played
    out = normalize_advantages(advantages, mask)
    real = [0.5, 1.5, 2.5, -3.0, 7.0]
    mean = sum(real) / 5
    std = math.sqrt(sum((a - mean) ** 2 for a in real) / 5)
    expected = [[(0.5 - mean) / std, 100.0], [(1.5 - mean) / std, (-3.0 - mean) / std],
                [(2.5 - mean) / std, (7.0 - mean) / std]]
    assert torch.allclose(out, torch.tensor(expected), atol=1e-6)
    # Without a mask every step counts; a constant batch (no signal) stays near zero instead of blowing up.
    assert abs(float(normalize_advantages(advantages).mean())) < 1e-6
    assert float(normalize_advantages(torch.full((4, 2), 0.3)).abs().max()) < 1e-3
