"""What a run tells the user: TensorBoard events, config.json, and the progress line."""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from torch.utils.tensorboard import SummaryWriter

from doom_a3c.messages import EpisodeDone, UpdateDone


def clock(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` past an hour."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def human(n: float) -> str:
    """1234567 -> ``1.23M``."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def _markdown_table(rows: dict) -> str:
    return "| setting | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items())


def reward_digits(target: float) -> int:
    """Decimals to print a game's rewards with: two where its target is a fraction of 1 or a few units
    (my_way_home's 0.97: one decimal shows 0.96 as 1.0), one otherwise."""
    return 2 if abs(target) < 10 else 1


class Summaries:
    """The run's TensorBoard writer, the recent episodes and update statistics, and the printed lines.

    Rewards are the game's own (raw); where the scenario shapes its reward, the shaped return the learner
    saw is logged and printed beside it.
    """

    def __init__(self, out=sys.stdout, digits: int = 1):
        self.out = out
        self.digits = digits  # decimals of the rewards printed (reward_digits)
        self.writer: SummaryWriter | None = None
        self.recent_rewards: collections.deque = collections.deque(maxlen=100)
        self.recent_shaped: collections.deque = collections.deque(maxlen=100)
        self.update_sums: collections.defaultdict = collections.defaultdict(float)
        self.update_count = 0
        self.fps_mark: tuple[float, int] | None = None

    def say(self, line: str) -> None:
        """Print one line and flush, so progress shows up when piped too."""
        print(line, file=self.out, flush=True)

    def open(self, run_dir: Path, settings: dict, scenario: dict, step: int, purge_step: int | None) -> None:
        """Start the events file and record the run's settings there and in config.json. A resumed run
        writes into the same directory; ``purge_step`` hides what the interrupted run had logged past its
        last checkpoint, so the curves continue without a doubled stretch."""
        run_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(run_dir), purge_step=purge_step)
        self.writer.add_text("config/train", _markdown_table(settings), step)
        self.writer.add_text("config/scenario", _markdown_table(scenario), step)
        (run_dir / "config.json").write_text(json.dumps({"train": settings, "scenario": scenario},
                                                        indent=2, default=str))

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def training_mean(self) -> float | None:
        """The mean raw reward of the last 100 training episodes (None before the first)."""
        return float(np.mean(self.recent_rewards)) if self.recent_rewards else None

    def gif(self, tag: str, path: Path, step: int) -> None:
        """An animated GIF in TensorBoard's Images tab (it plays there): the file's own bytes as an encoded
        image, which is what ``add_video`` writes too, without needing moviepy to encode it again. (The
        writer has no public call for a ready-made summary: add_video itself goes through the same file
        writer.) Every GIF adds its size to the event file: ~50 kB a plain basic episode, a few MB an
        explained one."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        data = Path(path).read_bytes()
        height, width = iio.improps(data, extension=".gif").shape[-3:-1]
        image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=data)
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)

    def record(self, message, frames: int) -> None:
        """An episode's returns go to the charts at once; an update's statistics are averaged per window."""
        if isinstance(message, EpisodeDone):
            self.recent_rewards.append(message.reward)
            self.scalar("charts/episode_reward", message.reward, frames)
            if message.shaped is not None:  # what the learner saw, beside the game's own score
                self.recent_shaped.append(message.shaped)
                self.scalar("charts/episode_shaped_reward", message.shaped, frames)
            self.scalar("charts/episode_length", message.length, frames)
        elif isinstance(message, UpdateDone):
            for key, value in message.stats.items():
                self.update_sums[key] += value
            self.update_count += 1

    def window(self, frames: int, now: float, env_restarts: int) -> float:
        """Close a summary window: frames/s since the last one and the mean of each update statistic over
        it; returns the frames/s."""
        mark_time, mark_frames = self.fps_mark or (now, frames)
        fps = (frames - mark_frames) / max(now - mark_time, 1e-9)
        self.fps_mark = (now, frames)
        self.scalar("charts/fps", fps, frames)
        self.scalar("charts/env_restarts", env_restarts, frames)
        if self.update_count:
            for key, total in self.update_sums.items():
                self.scalar(key, total / self.update_count, frames)
            self.update_sums.clear()
            self.update_count = 0
        return fps

    def progress_line(self, frames: int, fps: float, last_eval: str, best_eval: float, eval_mode: str,
                      elapsed: float, eta: str, counters: dict, resumed_from: int | None) -> str:
        mean = self.training_mean()
        d = self.digits
        mean_reward = "-" if mean is None else f"{mean:.{d}f}"
        if self.recent_shaped:
            mean_reward += f" (shaped {np.mean(self.recent_shaped):.{d}f})"
        mode = "" if eval_mode == "greedy" else f" {eval_mode}"
        line = (f"frames {human(frames):>7} | {fps:6.0f} fps | reward(last 100) {mean_reward:>6} | "
                f"eval{mode} {last_eval:>6} (best {best_eval:.{d}f}) | {clock(elapsed)} elapsed | ETA {eta}")
        for key, what in (("env_restarts", "game"), ("worker_restarts", "worker")):
            if counters[key]:
                line += f" | {counters[key]} {what} restart{'s' if counters[key] > 1 else ''}"
        if resumed_from is not None:
            line += f" | resumed at {human(resumed_from)}"
        return line

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
