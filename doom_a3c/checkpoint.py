"""Checkpoints: atomic save, validated load with ``weights_only=True`` (a downloaded file cannot run code)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from doom_a3c.model import ActorCritic

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "model", "model_kwargs", "scenario", "config", "counters")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or does not fit what it is loaded into."""


def save_checkpoint(path: str | Path, *, model: ActorCritic, scenario: dict, config: dict,
                    counters: dict, optimizer_state: dict | None = None,
                    evaluation: dict | None = None, run: dict | None = None) -> Path:
    """Write a checkpoint to a temporary file in the same folder, then rename it over ``path``.

    The rename is atomic, so a crash or Ctrl-C while saving leaves the previous checkpoint intact.
    ``run`` names the training run (``{"name": ...}``) so that ``--resume`` continues it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format_version": FORMAT_VERSION,
        "model": model.state_dict(),
        "model_kwargs": model.model_kwargs(),
        "optimizer": optimizer_state,
        "scenario": scenario,
        "config": config,
        "counters": counters,
        "evaluation": evaluation or {},
        "run": run or {},
    }
    # Serialised in memory first: a failing write (disk full, file size limit) then raises a plain
    # OSError naming the cause, where torch.save streaming into the file raises an opaque RuntimeError.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file readable by its owner only; give it the permissions of any new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and validate a checkpoint; raise CheckpointError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated, foreign or unsafe files
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line})") from err
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a doom_a3c checkpoint (contains {type(payload).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: not a doom_a3c checkpoint (missing {', '.join(missing)})")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['format_version']} is not supported "
                              f"(this version reads format {FORMAT_VERSION})")
    return payload


def model_from_checkpoint(payload: dict[str, Any], path: str | Path,
                          obs_shape: tuple[int, ...] | None = None,
                          num_actions: int | None = None, *, action_space: Any = None) -> ActorCritic:
    """Rebuild the model a checkpoint holds; check it fits the environment it is meant to play
    (its observation shape, and ``num_actions`` discrete actions or the gymnasium ``action_space``)."""
    kwargs = dict(payload["model_kwargs"])
    saved_shape = tuple(kwargs["obs_shape"])
    if obs_shape is not None and tuple(obs_shape) != saved_shape:
        raise CheckpointError(f"{path}: model expects observations of shape {saved_shape}, "
                              f"but this environment gives {tuple(obs_shape)}")
    try:
        model = ActorCritic(**kwargs)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot rebuild the model ({err})") from err
    if action_space is not None:
        try:
            expected = ActorCritic.from_spaces(_box(saved_shape), action_space, 1, lstm=False)
        except ValueError as err:
            raise CheckpointError(f"{path}: {err}") from err
        if (expected.num_actions, expected.action_low, expected.action_high) != \
                (model.num_actions, model.action_low, model.action_high):
            raise CheckpointError(f"{path}: model has {model.describe_action_space()}, but this environment has "
                                  f"{expected.describe_action_space()}")
    if num_actions is not None and num_actions != model.num_actions:
        raise CheckpointError(f"{path}: model has {model.num_actions} actions, but this scenario has {num_actions}")
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not match the model ({str(err).splitlines()[0]})") from err
    return model


def _box(shape: tuple[int, ...]) -> Any:
    import gymnasium as gym
    import numpy as np

    return gym.spaces.Box(0, 255, shape, dtype=np.uint8)
