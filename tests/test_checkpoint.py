"""Checkpoints: atomic round trip, and clear errors for missing, corrupt, foreign or mismatched files."""

from __future__ import annotations

import pickle

import pytest
import torch

from doom_a3c.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from doom_a3c.model import ActorCritic
from doom_a3c.shared_optim import SharedAdam


def _save(path, model=None, **extra):
    model = model or ActorCritic((1, 84, 84), 3, 32)
    save_checkpoint(path, model=model, scenario={"name": "basic"}, config={"lr": 1e-4},
                    counters={"frames": 1234}, **extra)
    return model


def test_round_trip_keeps_weights_optimizer_and_counters(tmp_path):
    torch.manual_seed(0)
    model = ActorCritic((1, 84, 84), 3, 32)
    optimizer = SharedAdam(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    path = tmp_path / "sub" / "latest.pt"
    _save(path, model, optimizer_state=optimizer.state_dict(), evaluation={"mean": 42.0})
    assert not [p for p in path.parent.iterdir() if p.name != "latest.pt"]  # no temporary file left
    payload = load_checkpoint(path)
    restored = model_from_checkpoint(payload, path, (1, 84, 84), 3)
    for a, b in zip(model.state_dict().values(), restored.state_dict().values()):
        assert torch.equal(a, b)
    assert payload["counters"]["frames"] == 1234 and payload["evaluation"]["mean"] == 42.0
    again = SharedAdam(restored.parameters(), lr=1e-3)
    again.load_state_dict(payload["optimizer"])
    assert again.steps == 1
    assert all(t.is_shared() for s in again.state.values() for t in s.values())


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "best.pt"
    _save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a truncated download
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "not a readable checkpoint" in str(err.value)


def test_file_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path, _use_new_zipfile_serialization=True, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_foreign_file(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a doom_a3c checkpoint"):
        load_checkpoint(path)


def test_mismatched_model_names_what_differs(tmp_path):
    path = tmp_path / "best.pt"
    _save(path)
    payload = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="has 3 actions, but this scenario has 5"):
        model_from_checkpoint(payload, path, (1, 84, 84), 5)
    with pytest.raises(CheckpointError, match=r"shape \(1, 84, 84\).*\(3, 84, 84\)"):
        model_from_checkpoint(payload, path, (3, 84, 84), 3)
    payload["model"].pop("value.bias")
    with pytest.raises(CheckpointError, match="weights do not match"):
        model_from_checkpoint(payload, path, (1, 84, 84), 3)
