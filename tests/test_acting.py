"""The workers' ONNX Runtime acting pass: the model's numbers for every encoder, core and head, on the
model's live weights, and the eager fallback."""

from __future__ import annotations

import sys

import pytest
import torch

from doom_a3c import acting
from doom_a3c.acting import OnnxActor, make_actor
from doom_a3c.config import TrainConfig
from doom_a3c.envs import load_env_spec
from doom_a3c.model import ActorCritic
from doom_a3c.worker import Worker, make_shared_handles

KINDS = {
    "basic: 1x42x42, LSTM, discrete": dict(obs_shape=(1, 42, 42), num_actions=3, hidden_size=128),
    "Pong: 4x84x84 stack, LSTM, discrete": dict(obs_shape=(4, 84, 84), num_actions=6, hidden_size=256),
    "Pong, its pixel mean and std": dict(obs_shape=(4, 84, 84), num_actions=6, hidden_size=64, lstm=False,
                                         pixel_norm=(106.0, 47.0)),
    "colour 3x60x108, feed-forward": dict(obs_shape=(3, 60, 108), num_actions=5, hidden_size=64, lstm=False),
    "vector, LSTM, discrete": dict(obs_shape=(8,), num_actions=4, hidden_size=64),
    "vector, feed-forward, Gaussian": dict(obs_shape=(3,), action_low=[-2.0], action_high=[2.0], hidden_size=64,
                                           lstm=False),
    "vector, LSTM, 2-D Gaussian": dict(obs_shape=(6,), action_low=[-1.0, 0.0], action_high=[1.0, 2.0],
                                       hidden_size=32),
}


def _observations(model: ActorCritic, batch: int, generator: torch.Generator) -> torch.Tensor:
    if len(model.obs_shape) == 3:
        return torch.randint(0, 256, (batch, *model.obs_shape), dtype=torch.uint8, generator=generator)
    return torch.randn(batch, *model.obs_shape, generator=generator)


def _perturb(model: ActorCritic, generator: torch.Generator) -> None:
    """Weights away from their initialisation (the policy head starts almost at zero), in place."""
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)


@pytest.mark.parametrize("kind", list(KINDS), ids=list(KINDS))
def test_the_onnx_actor_gives_the_models_outputs_step_after_step(kind):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = ActorCritic(**KINDS[kind])
    _perturb(model, generator)
    batch = 4
    actor = OnnxActor(model, batch)
    eager_state = actor_state = model.initial_state(batch)
    for step in range(5):
        obs = _observations(model, batch, generator)
        done = (torch.rand(batch, generator=generator) < 0.3).float() if step else torch.ones(batch)
        with torch.inference_mode():
            params, value, eager_state = model(obs, eager_state, done)
            got_params, got_value, actor_state = actor(obs, actor_state, done)
        assert got_params.shape == params.shape and got_value.shape == value.shape
        # With a pixel mean the eager patch products fold it into conv1's bias (a sum of large terms that
        # nearly cancel), ONNX subtracts it from the pixels: float32 rounding of 1e-5 at the first layer.
        tolerance = 1e-4 if "pixel_norm" in KINDS[kind] else 1e-5
        torch.testing.assert_close(got_params, params, atol=tolerance, rtol=tolerance)
        torch.testing.assert_close(got_value, value, atol=tolerance, rtol=tolerance)
        for got, want in zip(actor_state, eager_state):
            torch.testing.assert_close(got, want, atol=tolerance, rtol=tolerance)
        # What the actor returns is valid until its next call: carry copies, as the worker's buffers do.
        actor_state = (actor_state[0].clone(), actor_state[1].clone())


def test_the_onnx_actor_sees_new_weights_after_every_update_without_a_rebuild():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(2)
    model = ActorCritic((1, 42, 42), 3, 128)
    actor = OnnxActor(model, 4)
    obs, state, done = _observations(model, 4, generator), model.initial_state(4), torch.zeros(4)
    before = actor(obs, state, done)[0].clone()
    # An update as the worker makes one: the shared weights copied into the local parameters in place.
    shared = ActorCritic((1, 42, 42), 3, 128)
    _perturb(shared, generator)
    with torch.no_grad():
        for local, new in zip(model.parameters(), shared.parameters()):
            local.copy_(new)
    after = actor(obs, state, done)[0].clone()
    with torch.inference_mode():
        want = model(obs, state, done)[0]
    assert (after - before).abs().max() > 1e-3  # it did change...
    torch.testing.assert_close(after, want, atol=1e-5, rtol=1e-5)  # ...to what the new weights give
    # And after an optimizer step on the parameters themselves.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(obs, state, done)[0].sum().backward()
    optimizer.step()
    with torch.inference_mode():
        want = model(obs, state, done)[0]
    torch.testing.assert_close(actor(obs, state, done)[0], want, atol=1e-5, rtol=1e-5)


def test_another_batch_size_goes_through_the_eager_model():
    torch.manual_seed(0)
    model = ActorCritic((8,), 4, 32)
    actor = OnnxActor(model, 4)
    obs, state = torch.randn(1, 8), model.initial_state(1)
    with torch.inference_mode():
        torch.testing.assert_close(actor(obs, state, torch.zeros(1))[0], model(obs, state, torch.zeros(1))[0])


def test_without_onnxruntime_training_acts_in_eager_pytorch_and_says_so_once(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` meets where it is missing
    monkeypatch.setattr(acting, "_warned", False)
    model = ActorCritic((8,), 4, 32)
    assert make_actor(model, 4) is model
    assert make_actor(model, 4) is model
    err = capsys.readouterr().err
    assert err.count("acting in eager PyTorch") == 1 and "ONNX Runtime is unavailable" in err
    assert make_actor(model, 4, "torch") is model  # asked for: nothing to say
    assert capsys.readouterr().err == ""


def test_the_worker_acts_with_onnx_runtime_by_default_and_with_the_model_on_request():
    spec = load_env_spec("basic")
    for acting_with, kind in (("ort", OnnxActor), ("torch", ActorCritic)):
        cfg = TrainConfig(workers=1, hidden_size=32, envs_per_worker=2, rollout_len=5, acting=acting_with)
        worker = Worker(0, cfg, spec, make_shared_handles(ActorCritic(spec.obs_shape, spec.num_actions, 32), cfg))
        try:
            assert isinstance(worker.actor, kind)
            worker.step()
            worker.step()  # the state carried across rollouts is the worker's own, not the actor's buffer
            assert worker.shared.total_frames() == 2 * 5 * 2 * spec.frame_skip
        finally:
            worker.close()


def test_an_unknown_acting_backend_is_refused():
    with pytest.raises(ValueError, match="--acting must be ort or torch"):
        TrainConfig(acting="tensorrt").validate()
