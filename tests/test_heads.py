"""The policy heads against torch.distributions, and the model's choice of blocks from the spaces."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal

from doom_a3c.model import ActorCritic, CategoricalHead, GaussianHead


def test_gaussian_log_prob_and_entropy_match_torch_distributions():
    torch.manual_seed(0)
    head = GaussianHead(8, low=[-2.0, -1.0, 0.0], high=[2.0, 1.0, 5.0], init_log_std=0.0)
    with torch.no_grad():
        head.log_std.copy_(torch.tensor([-0.7, 0.2, 1.1]))
    features = torch.randn(5, 8)
    params = head(features)
    assert params.shape == (5, 6)
    mean = head.mean(features)
    reference = Normal(mean, head.log_std.exp().expand_as(mean))
    actions = torch.randn(5, 3) * 3  # outside the bounds too: log-probs are of the unclipped sample
    assert torch.allclose(head.log_prob(params, actions), reference.log_prob(actions).sum(-1), atol=1e-5)
    assert torch.allclose(head.entropy(params), reference.entropy().sum(-1), atol=1e-6)
    assert torch.equal(head.greedy(params), mean)


def test_gaussian_gradients_match_torch_distributions():
    torch.manual_seed(1)
    results = []
    for use_reference in (False, True):
        head = GaussianHead(4, low=[-1.0, -1.0], high=[1.0, 1.0])
        head.load_state_dict(results[0][1] if results else head.state_dict())
        features, actions = torch.randn(6, 4, generator=torch.Generator().manual_seed(2)), torch.ones(6, 2) * 0.3
        params = head(features)
        if use_reference:
            dist = Normal(params[:, :2], params[:, 2:].exp())
            loss = -(dist.log_prob(actions).sum(-1)).mean() - 0.1 * dist.entropy().sum(-1).mean()
        else:
            loss = -head.log_prob(params, actions).mean() - 0.1 * head.entropy(params).mean()
        loss.backward()
        results.append(({n: p.grad.clone() for n, p in head.named_parameters()}, head.state_dict()))
    for name, grad in results[0][0].items():
        assert torch.allclose(grad, results[1][0][name], atol=1e-6), name


def test_gaussian_samples_have_the_head_mean_and_std():
    head = GaussianHead(2, low=[-10.0], high=[10.0], init_log_std=np.log(0.5))
    params = head(torch.zeros(20000, 2))
    samples = head.sample(params, generator=torch.Generator().manual_seed(0))
    assert samples.mean().item() == pytest.approx(head.mean.bias.item(), abs=0.02)
    assert samples.std().item() == pytest.approx(0.5, rel=0.03)


def test_categorical_log_prob_and_entropy_match_torch_distributions():
    torch.manual_seed(3)
    head = CategoricalHead(8, 4)
    logits = head(torch.randn(6, 8)) * 50  # sharp distributions too
    reference = Categorical(logits=logits)
    actions = torch.tensor([0, 1, 2, 3, 1, 0])
    assert torch.allclose(head.log_prob(logits, actions), reference.log_prob(actions), atol=1e-5)
    assert torch.allclose(head.entropy(logits), reference.entropy(), atol=1e-5)


def test_the_spaces_pick_encoder_core_and_head():
    vector = gym.spaces.Box(-1, 1, (3,), dtype=np.float32)
    model = ActorCritic.from_spaces(vector, gym.spaces.Box(-2, 2, (1,), dtype=np.float32), 16, lstm=False)
    params, value, state = model(torch.zeros(5, 3), model.initial_state(5), torch.zeros(5))
    assert params.shape == (5, 2) and value.shape == (5,) and state[0].shape == (5, 0)
    assert model.core is None and model.action_shape == (1,)
    unrolled, values, _ = model.unroll(torch.zeros(4, 5, 3), model.initial_state(5), torch.zeros(4, 5))
    assert unrolled.shape == (4, 5, 2) and values.shape == (4, 5)
    rebuilt = ActorCritic(**model.model_kwargs())  # what a checkpoint stores rebuilds the same model
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt(torch.ones(1, 3), rebuilt.initial_state(1), torch.zeros(1))[0],
                       model(torch.ones(1, 3), model.initial_state(1), torch.zeros(1))[0])
    with pytest.raises(ValueError, match="not supported"):
        ActorCritic.from_spaces(vector, gym.spaces.MultiBinary(3))
    with pytest.raises(ValueError, match="not supported"):
        ActorCritic.from_spaces(gym.spaces.Box(0, 1, (2, 3, 4, 5)), gym.spaces.Discrete(2))
