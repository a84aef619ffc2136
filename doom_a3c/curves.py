"""Reading training curves back from TensorBoard event files, for the comparison plots and tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def scalars(run_dir: Path, tag: str, wall_time: bool = False):
    """``(steps, values)`` of one scalar tag of a run (empty arrays if it never logged it); with
    ``wall_time``, ``(steps, values, wall_times)``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    points = events.Scalars(tag) if tag in events.Tags()["scalars"] else []
    steps = np.array([p.step for p in points], dtype=float)
    values = np.array([p.value for p in points], dtype=float)
    if wall_time:
        return steps, values, np.array([p.wall_time for p in points], dtype=float)
    return steps, values


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Running mean over the last ``window`` values (fewer at the start)."""
    if len(values) < window:
        return np.cumsum(values) / np.arange(1, len(values) + 1) if len(values) else values
    kernel = np.ones(window) / window
    head = np.array([values[: i + 1].mean() for i in range(window - 1)])
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])
