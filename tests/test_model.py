"""The actor-critic network: shapes, the recurrent-state reset, and unroll == step-by-step."""

from __future__ import annotations

import pytest
import torch

from doom_a3c.model import ActorCritic, CategoricalHead, ConvEncoder

OBS_SHAPE = (1, 84, 84)


def _model(seed=0, actions=3):
    torch.manual_seed(seed)
    return ActorCritic(OBS_SHAPE, actions, hidden_size=32)


def _obs(batch, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, *OBS_SHAPE), dtype=torch.uint8, generator=generator)


def test_forward_shapes_and_initial_state():
    model = _model()
    h, c = model.initial_state(4)
    assert h.shape == c.shape == (4, 32) and not h.any() and not c.any()
    logits, value, (h2, c2) = model(_obs(4), (h, c), torch.zeros(4))
    assert logits.shape == (4, 3) and value.shape == (4,) and h2.shape == (4, 32) and c2.shape == (4, 32)


def test_policy_starts_near_uniform():
    """The small-norm policy head: every action starts with probability close to 1/A."""
    model = _model(actions=5)
    logits, _, _ = model(_obs(8), model.initial_state(8), torch.zeros(8))
    probs = logits.softmax(dim=1)
    assert torch.allclose(probs, torch.full_like(probs, 0.2), atol=0.02)


def test_done_resets_the_recurrent_state_for_that_sequence_only():
    model = _model()
    obs = _obs(2)
    # A state that has seen something, for both sequences.
    _, _, state = model(_obs(2, seed=1), model.initial_state(2), torch.zeros(2))
    assert state[0].abs().sum() > 0
    logits_reset, value_reset, _ = model(obs, state, torch.tensor([1.0, 0.0]))
    logits_fresh, value_fresh, _ = model(obs, model.initial_state(2), torch.zeros(2))
    logits_kept, value_kept, _ = model(obs, state, torch.zeros(2))
    # Sequence 0 started a new episode: same output as from a zero state.
    assert torch.allclose(logits_reset[0], logits_fresh[0]) and torch.allclose(value_reset[0], value_fresh[0])
    # Sequence 1 did not: its memory is kept, which gives a different output from the zero state.
    assert torch.allclose(logits_reset[1], logits_kept[1]) and torch.allclose(value_reset[1], value_kept[1])
    assert not torch.allclose(value_reset[1], value_fresh[1])


def test_unroll_matches_step_by_step_from_a_carried_state():
    model = _model()
    steps, batch = 6, 2
    obs = _obs(steps * batch, seed=3).view(steps, batch, *OBS_SHAPE)
    done = torch.zeros(steps, batch)
    done[3, 0] = 1.0  # sequence 0 starts a new episode at step 3
    _, _, start_state = model(_obs(batch, seed=4), model.initial_state(batch), torch.zeros(batch))
    logits, values, final = model.unroll(obs, start_state, done)
    state = start_state
    for t in range(steps):
        step_logits, step_value, state = model(obs[t], state, done[t])
        assert torch.allclose(logits[t], step_logits, atol=1e-6)
        assert torch.allclose(values[t], step_value, atol=1e-6)
    assert torch.allclose(final[0], state[0], atol=1e-6) and torch.allclose(final[1], state[1], atol=1e-6)


def test_model_kwargs_rebuild_the_same_architecture():
    model = _model(actions=7)
    clone = ActorCritic(**{**model.model_kwargs(), "obs_shape": tuple(model.model_kwargs()["obs_shape"])})
    clone.load_state_dict(model.state_dict())
    obs = _obs(1)
    assert torch.equal(model(obs, model.initial_state(1), torch.zeros(1))[0],
                       clone(obs, clone.initial_state(1), torch.zeros(1))[0])


def test_a_games_pixel_normalisation_is_rebuilt_from_the_kwargs_and_the_default_adds_none():
    assert "pixel_norm" not in _model(actions=3).model_kwargs()  # older checkpoints rebuild the same model
    model = ActorCritic((4, 84, 84), 6, 32, lstm=False, pixel_norm=(106.0, 47.0))
    kwargs = model.model_kwargs()
    assert kwargs["pixel_norm"] == [106.0, 47.0]
    clone = ActorCritic(**kwargs)
    clone.load_state_dict(model.state_dict())
    obs = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    assert torch.equal(model(obs, model.initial_state(2), torch.zeros(2))[1],
                       clone(obs, clone.initial_state(2), torch.zeros(2))[1])
    with pytest.raises(ValueError, match="std must be positive"):
        ConvEncoder((4, 84, 84), 32, (0.0, 0.0))


def test_xavier_init_gives_zero_biases_and_xavier_bounds():
    torch.manual_seed(0)
    encoder = ConvEncoder((4, 84, 84), 256, init="xavier")
    for layer in (encoder.conv[0], encoder.conv[2], encoder.fc[0]):
        fan_out, fan_in = layer.weight.shape[0], layer.weight[0].numel()
        fan_out *= layer.weight[0, 0].numel()  # a conv's receptive field counts in both fans
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert torch.count_nonzero(layer.bias) == 0
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
    with pytest.raises(ValueError, match="unknown init"):
        ConvEncoder((4, 84, 84), 32, init="he")


def _step_by_step(model, obs, state, done):
    logits, values = [], []
    for t in range(done.shape[0]):
        step_logits, step_value, state = model(obs[t], state, done[t])
        logits.append(step_logits)
        values.append(step_value)
    return torch.stack(logits), torch.stack(values), state


def test_unroll_matches_the_step_loop_in_outputs_and_gradients():
    """Episode starts at t=0, back to back, at the last step, and games with none: the batched unroll
    used by the update must give the acting step loop's outputs, final state and gradients."""
    steps, batch = 7, 5
    done = torch.zeros(steps, batch)
    done[0, 0] = 1.0  # starts a new episode at the first step: no carried state
    done[2, 1] = done[3, 1] = 1.0  # two one-step-apart starts
    done[6, 2] = 1.0  # at the last step
    done[1, 3] = done[4, 3] = 1.0
    # game 4: no episode start inside the rollout
    obs = _obs(steps * batch, seed=5).view(steps, batch, *OBS_SHAPE)
    results = []
    for method in ("unroll", "steps"):
        model = _model(seed=2)
        _, _, state = model(_obs(batch, seed=6), model.initial_state(batch), torch.zeros(batch))
        state = (state[0].detach(), state[1].detach())
        if method == "unroll":
            logits, values, final = model.unroll(obs, state, done)
        else:
            logits, values, final = _step_by_step(model, obs, state, done)
        (logits.square().sum() + values.sum() + final[1].sum()).backward()
        results.append((logits, values, final, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (l1, v1, f1, g1), (l2, v2, f2, g2) = results
    assert torch.allclose(l1, l2, atol=1e-5) and torch.allclose(v1, v2, atol=1e-5)
    assert torch.allclose(f1[0], f2[0], atol=1e-5) and torch.allclose(f1[1], f2[1], atol=1e-5)
    for name in g1:
        assert torch.allclose(g1[name], g2[name], atol=1e-4), name



@pytest.mark.parametrize("shape", [(1, 42, 42), (4, 84, 84), (3, 60, 108)])
@pytest.mark.parametrize("batch", [5, ConvEncoder.MEASURE_FROM])
@pytest.mark.parametrize("pixel_norm", [(0.0, 255.0), (106.0, 47.0)], ids=["pixels/255", "game's mean and std"])
def test_both_encoder_paths_equal_the_conv_layers_outputs_and_gradients(shape, batch, pixel_norm):
    """The patch products, the kernels and ``forward`` (which picks one of them for a large batch) give the
    same numbers as the nn.Conv2d layers on (obs - mean) / std, outputs and the weights' gradients."""
    torch.manual_seed(0)
    encoder = ConvEncoder(shape, 64, pixel_norm).double()
    obs = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8)
    reference = encoder.fc(encoder.conv((obs.double() - pixel_norm[0]) / pixel_norm[1]))
    weights = torch.randn_like(reference)
    expected = torch.autograd.grad((reference * weights).sum(), list(encoder.parameters()))
    for path in (encoder.forward_patches, encoder.forward_kernels, encoder):
        out = path(obs)
        assert torch.allclose(out, reference, rtol=0, atol=1e-12)
        got = torch.autograd.grad((out * weights).sum(), list(encoder.parameters()))
        for a, b in zip(got, expected):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_a_large_batch_runs_on_the_path_measured_faster_and_the_choice_is_kept(monkeypatch):
    """The first large batch of an input shape times both paths (with the weights' gradients where they are
    on) and remembers which won; small batches never measure and run the patch products. The measurement
    leaves no gradient behind."""
    from doom_a3c import model as model_module

    monkeypatch.setattr(model_module, "_KERNELS_WIN", {})
    encoder = ConvEncoder((3, 32, 96), 64)
    calls = []
    for name in ("forward_kernels", "forward_patches"):
        real = getattr(encoder, name)
        monkeypatch.setattr(encoder, name, lambda obs, real=real, name=name: calls.append(name) or real(obs))
    small = torch.randint(0, 256, (4, 3, 32, 96), dtype=torch.uint8)
    encoder(small)
    assert calls == ["forward_patches"] and model_module._KERNELS_WIN == {}
    large = torch.randint(0, 256, (ConvEncoder.MEASURE_FROM, 3, 32, 96), dtype=torch.uint8)
    calls.clear()
    encoder(large).sum().backward()
    (key, kernels_won), = model_module._KERNELS_WIN.items()
    assert key == ((3, 32, 96), torch.uint8, torch.float32, True)
    assert calls[:-1] == ["forward_kernels", "forward_patches"] * 4  # timed, alternated
    assert calls[-1] == ("forward_kernels" if kernels_won else "forward_patches")
    expected = torch.autograd.grad(encoder.fc(encoder.conv(large.float() / 255.0)).sum(), list(encoder.parameters()))
    for param, grad in zip(encoder.parameters(), expected):  # the measuring passes added nothing to .grad
        assert torch.allclose(param.grad, grad, rtol=1e-4, atol=1e-5)
    calls.clear()
    with torch.no_grad():  # a new kind of call (no gradients) is measured on its own
        encoder(large)
    assert len(model_module._KERNELS_WIN) == 2 and len(calls) == 4 * 2 + 1
    calls.clear()
    encoder(large).sum()
    assert len(calls) == 1  # remembered


@pytest.mark.parametrize("recorded", [False, True], ids=["stepped", "recorded-states"])
@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_unroll_equals_a_loop_of_lstm_cells_in_outputs_and_gradients(dtype, tolerance, recorded):
    """The written-out backward through time (_LSTMUnroll) against autograd over nn.LSTMCell step by step,
    episode resets inside the rollout and gradients into the initial state included; also with the states
    acting recorded given (the worker's update), whose forward has no loop."""
    torch.manual_seed(1)
    model = ActorCritic((1, 42, 42), 3, 32).to(dtype)
    steps, batch = 9, 3
    obs = torch.randint(0, 256, (steps, batch, 1, 42, 42), dtype=torch.uint8)
    done = (torch.rand(steps, batch) < 0.3).to(dtype)
    h0 = torch.randn(batch, 32, dtype=dtype, requires_grad=True)
    c0 = torch.randn(batch, 32, dtype=dtype, requires_grad=True)

    states_in = []

    def loop():
        features = model.encoder(obs.reshape(steps * batch, 1, 42, 42)).view(steps, batch, -1)
        keep, (h, c), outputs = (1 - done).unsqueeze(2), (h0, c0), []
        states_in.clear()
        for t in range(steps):
            states_in.append((h.detach(), c.detach()))
            h, c = model.core(features[t], (h * keep[t], c * keep[t]))
            outputs.append(h)
        hidden = torch.stack(outputs)
        return model.policy(hidden), model.value(hidden).squeeze(2), (h, c)

    def loss(out):
        params, values, (h, c) = out
        return params.sin().sum() + values.cos().sum() + (h * h).sum() + 0.3 * c.sum()

    inputs = list(model.parameters()) + [h0, c0]
    expected_out = loop()
    states = tuple(torch.stack(x) for x in zip(*states_in)) if recorded else None
    got_out = model.unroll(obs, (h0, c0), done, states)
    for a, b in zip(got_out[:2] + got_out[2], expected_out[:2] + expected_out[2]):
        assert torch.allclose(a, b, rtol=0, atol=tolerance)
    expected = torch.autograd.grad(loss(expected_out), inputs)
    got = torch.autograd.grad(loss(got_out), inputs)
    for a, b in zip(got, expected):
        assert (a - b).abs().max() <= tolerance * max(1.0, float(b.abs().max()))


def test_gumbel_max_sampling_follows_the_softmax():
    """CategoricalHead.sample draws from softmax(logits): frequencies over 200k draws within 0.005."""
    head = CategoricalHead(4, 3)
    logits = torch.tensor([[2.0, 0.0, -1.0]]).expand(200_000, 3)
    draws = head.sample(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).double() / len(draws)
    assert torch.allclose(freq, logits[0].double().softmax(-1), atol=0.005)
