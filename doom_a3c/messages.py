"""The small typed records a worker sends to the supervisor, one queue per worker."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EpisodeDone:
    """A training game finished an episode: its raw (unscaled) return, its length in env steps, and the
    shaped return the learner saw where the scenario shapes its reward (None elsewhere)."""

    rank: int
    reward: float
    length: int
    shaped: float | None = None


@dataclass(frozen=True)
class UpdateDone:
    """One rollout's update: the loss's statistics (plain names, e.g. ``losses/policy``) and its frames."""

    rank: int
    frames: int
    stats: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EnvRestarted:
    """A game's engine crashed or stopped answering and was replaced by a fresh one."""

    rank: int
    game: int
    reason: str


@dataclass(frozen=True)
class WorkerFailed:
    """A worker raised: the traceback, sent before the process exits."""

    rank: int
    error: str


@dataclass(frozen=True)
class WorkerRestarted:
    """Supervisor-side record: a worker died or stalled and was started again (``count``: restarts so far)."""

    rank: int
    reason: str
    count: int
