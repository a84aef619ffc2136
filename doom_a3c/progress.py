"""Progress on the long stretches that print nothing else: many evaluation episodes (the target's confirmation,
the final evaluation, the random baseline, a shipped model's score) and the benchmark's phases.

In the training progress line's style, one line at most every ``interval`` seconds, and only on a terminal:
redirected to a file or a pipe, the output stays what it was (the stretch's own result line says the rest).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

INTERVAL = 10.0  # seconds between lines, as the training progress line


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes:02d}:{seconds:02d}"


def on_terminal(out: TextIO | None = None) -> bool:
    stream = out if out is not None else sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


class EpisodeProgress:
    """``on_episode(i, result)`` for a stretch of ``total`` episodes: after an episode, where ``interval``
    seconds have passed since the stretch began or since its last line, says ``what: i/total episodes,
    mean so far M | mm:ss``. ``enabled=None``: only when ``say`` prints to a terminal."""

    def __init__(self, what: str, total: int, say: Callable[[str], None] | None = None, digits: int = 1,
                 interval: float = INTERVAL, enabled: bool | None = None, clock: Callable[[], float] = time.monotonic):
        self.what, self.total, self.digits, self.interval, self.clock = what, total, digits, interval, clock
        self.say = say if say is not None else (lambda line: print(line, flush=True))
        self.enabled = on_terminal() if enabled is None else enabled
        self.started = self.last = clock()
        self.rewards: list[float] = []

    def __call__(self, episode: int, result) -> None:
        self.rewards.append(float(result.reward))
        now = self.clock()
        if not self.enabled or now - self.last < self.interval or len(self.rewards) >= self.total:
            return  # the stretch's own result line follows its last episode
        self.last = now
        mean = sum(self.rewards) / len(self.rewards)
        self.say(f"{self.what}: {len(self.rewards)}/{self.total} episodes, mean so far {mean:.{self.digits}f} | "
                 f"{_clock(now - self.started)}")


def phase(line: str, out: TextIO | None = None) -> None:
    """A long phase beginning (``benchmark.py``'s): said on stderr, so stdout keeps only the table or JSON,
    and only on a terminal."""
    out = out if out is not None else sys.stderr
    if on_terminal(out):
        print(line, file=out, flush=True)
