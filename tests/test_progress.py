"""Progress on the long stretches (evaluations of many episodes, the benchmark's phases): its cadence, checked
with a clock of our own instead of a game, and its silence where the output is not a terminal."""

from __future__ import annotations

import io

from doom_a3c.evaluation import EpisodeResult
from doom_a3c.progress import EpisodeProgress, phase


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_long_stretch_says_how_far_it_got_at_most_once_an_interval_and_not_after_its_last_episode():
    lines, now = [], [0.0]
    progress = EpisodeProgress("confirming", 5, lines.append, digits=1, interval=10, enabled=True,
                               clock=lambda: now[0])
    for episode, (seconds, reward) in enumerate([(4, 1.0), (7, 2.0), (3, 3.0), (12, 4.0), (20, 5.0)], 1):
        now[0] += seconds
        progress(episode, EpisodeResult(reward, 10))
    # 4 s: too soon; 11 s: a line; 14 s: 3 s after it; 26 s: a line; 46 s: the last episode, whose own
    # result line the caller prints.
    assert lines == ["confirming: 2/5 episodes, mean so far 1.5 | 00:11",
                     "confirming: 4/5 episodes, mean so far 2.5 | 00:26"]


def test_progress_is_quiet_where_the_output_is_not_a_terminal(monkeypatch):
    lines, now = [], [0.0]
    progress = EpisodeProgress("final evaluation", 100, lines.append, interval=10, enabled=False,
                               clock=lambda: now[0])
    for episode in range(1, 100):
        now[0] += 60
        progress(episode, EpisodeResult(1.0, 10))
    assert lines == []
    monkeypatch.setattr("sys.stdout", io.StringIO())  # redirected, as pytest -s on a terminal would not be
    assert EpisodeProgress("x", 3).enabled is False

    piped, terminal = io.StringIO(), Terminal()
    phase("phase 1 of 3: the bare game...", out=piped)
    phase("phase 1 of 3: the bare game...", out=terminal)
    assert piped.getvalue() == "" and terminal.getvalue() == "phase 1 of 3: the bare game...\n"
