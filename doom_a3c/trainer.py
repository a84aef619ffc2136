"""The supervisor: builds the shared model, starts the workers, logs, evaluates, checkpoints, shuts down."""

from __future__ import annotations

import collections
import copy
import json
import math
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp
from torch.utils.tensorboard import SummaryWriter

from doom_a3c.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from doom_a3c.config import TrainConfig
from doom_a3c.envs import EnvSpec, make_env
from doom_a3c.evaluation import evaluate, summarize
from doom_a3c.model import ActorCritic
from doom_a3c.recording import write_gif
from doom_a3c.shared_optim import SharedAdam
from doom_a3c.worker import SharedHandles, worker_main


class WorkerError(RuntimeError):
    """A worker process raised or died."""


@dataclass
class TrainResult:
    """How a training run ended."""

    stop_reason: str  # "target", "max_frames", "max_minutes", "requested", "interrupted"
    frames: int
    seconds: float
    final_eval: dict = field(default_factory=dict)
    best_eval: float = -math.inf
    run_dir: str = ""
    checkpoint_dir: str = ""
    gifs: list[str] = field(default_factory=list)


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def _human(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def _markdown_table(rows: dict) -> str:
    return "| setting | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows.items())


class Trainer:
    """Runs A3C for one environment; ``train()`` returns when a stop condition is met."""

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, out=sys.stdout):
        self.cfg, self.spec, self.out = cfg, spec, out
        self.target = spec.target_reward if math.isnan(cfg.target_reward) else cfg.target_reward
        self.run_name = cfg.run_name or datetime.now().strftime("%Y%m%d-%H%M%S")
        self.run_dir = Path(cfg.runs_dir) / spec.name / self.run_name
        self.model_dir = Path(cfg.models_dir) / spec.name
        self.gif_dir = Path(cfg.frames_dir) / spec.name
        self.latest_path = self.model_dir / "latest.pt"
        self._stop_requested = threading.Event()
        self.best_path = self.model_dir / "best.pt"

    def request_stop(self) -> None:
        """Ask a running ``train()`` (from another thread) to stop as if a limit had been reached."""
        self._stop_requested.set()

    # -- output -------------------------------------------------------------------------------------
    def say(self, line: str) -> None:
        """Print one line and flush, so progress shows up when piped too."""
        print(line, file=self.out, flush=True)

    # -- setup --------------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, spec = self.cfg, self.spec
        # The evaluation env comes first: its spaces pick the model's encoder and head.
        self.eval_env = make_env(spec, seed=cfg.seed + 100_000, render_mode="rgb_array")  # GIFs need frames
        spaces = (self.eval_env.observation_space, self.eval_env.action_space)
        self.model = ActorCritic.from_spaces(*spaces, hidden_size=cfg.hidden_size, lstm=cfg.lstm)
        self.counters = {"frames": 0, "updates": 0, "episodes": 0, "seconds": 0.0}
        self.best_eval = -math.inf
        optimizer_state = None
        if cfg.resume:
            payload = load_checkpoint(self.latest_path)
            if payload["scenario"].get("name") != spec.name:
                raise CheckpointError(f"{self.latest_path}: trained on '{payload['scenario'].get('name')}', "
                                      f"not '{spec.name}'")
            self.model = model_from_checkpoint(payload, self.latest_path, spaces[0].shape, action_space=spaces[1])
            self.counters.update(payload["counters"])
            self.best_eval = float(payload.get("evaluation", {}).get("best_mean", -math.inf))
            optimizer_state = payload.get("optimizer")
        self.model.share_memory()
        self.optimizer = SharedAdam(self.model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        if optimizer_state is not None:
            try:
                self.optimizer.load_state_dict(optimizer_state)
            except (ValueError, KeyError) as err:
                raise CheckpointError(f"{self.latest_path}: optimizer state does not fit ({err})") from err
            for group in self.optimizer.param_groups:  # the command line's learning rate wins
                group["lr"] = cfg.lr
        self.eval_model = ActorCritic(**self.model.model_kwargs())

    def _open_writer(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(self.run_dir))
        settings = {**self.cfg.to_dict(), "target_reward": self.target}
        scenario = self.spec.to_dict()
        self.writer.add_text("config/train", _markdown_table(settings), 0)
        self.writer.add_text("config/scenario", _markdown_table(scenario), 0)
        (self.run_dir / "config.json").write_text(json.dumps({"train": settings, "scenario": scenario},
                                                             indent=2, default=str))

    # -- checkpoints and evaluation ------------------------------------------------------------------
    def _snapshot(self) -> ActorCritic:
        self.eval_model.load_state_dict(self.model.state_dict())
        return self.eval_model

    def _save(self, path: Path, evaluation: dict | None = None, model: ActorCritic | None = None) -> None:
        """Checkpoint ``model`` (default: the shared one) with the optimizer state, copied under the update
        lock so that no worker's step lands half-way through the copy."""
        with self.handles.update_lock:
            source = self.model if model is None else model
            weights = {k: v.clone() for k, v in source.state_dict().items()}
            optimizer_state = copy.deepcopy(self.optimizer.state_dict())
        snapshot = ActorCritic(**self.model.model_kwargs())
        snapshot.load_state_dict(weights)
        evaluation = {"best_mean": self.best_eval, **(evaluation or {})}
        save_checkpoint(path, model=snapshot, optimizer_state=optimizer_state, scenario=self.spec.to_dict(),
                        config=self.cfg.to_dict(), counters=dict(self.counters), evaluation=evaluation)

    def _evaluate(self, episodes: int, gif_tag: str | None) -> dict:
        """Greedy episodes with a fresh snapshot of the shared model; a GIF of the first if tagged."""
        results, frames = evaluate(self.eval_env, self._snapshot(), episodes, greedy=True, record_first=gif_tag is not None)
        if gif_tag is not None and frames:
            self._write_gif(gif_tag, frames)
        return summarize(results)

    def _write_gif(self, tag: str, frames: list) -> None:
        path = write_gif(self.gif_dir / f"{self.run_name}-{tag}.gif", frames, fps=self.eval_env.steps_per_second)
        self.gifs.append(str(path))

    def _random_baseline(self, episodes: int) -> None:
        """What "learned" is measured against: a uniformly random agent on the evaluation env."""
        self.eval_env.action_space.seed(self.cfg.seed)
        results, _ = evaluate(self.eval_env, None, episodes)
        baseline = summarize(results)
        self.writer.add_scalar("eval/random_baseline", baseline["mean"], self.counters["frames"])
        self.say(f"random agent: {baseline['mean']:.1f} ± {baseline['std']:.1f} over {episodes} episodes "
                 f"(mean length {baseline['length']:.0f} steps)")

    def _log_final(self, final: dict) -> None:
        step = self.counters["frames"]
        for key in ("mean", "std", "min", "max", "length"):
            self.writer.add_scalar(f"eval/final_{key}", final[key], step)
        self.writer.add_text("eval/final", json.dumps(final), step)

    # -- the run ------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Train until the target, ``max_frames`` or ``max_minutes``; Ctrl-C saves and returns."""
        cfg = self.cfg
        torch.set_num_threads(1)
        torch.manual_seed(cfg.seed)
        self._build()
        self._open_writer()
        self.gifs: list[str] = []
        if cfg.baseline_episodes and not cfg.resume:
            self._random_baseline(cfg.baseline_episodes)
        ctx = mp.get_context("spawn")
        self.handles = SharedHandles(self.model, self.optimizer, ctx.Lock(), ctx.Value("q", self.counters["frames"]),
                                     ctx.Queue(), ctx.Event())
        self.processes = [ctx.Process(target=worker_main, args=(rank, cfg, self.spec, self.handles),
                                      name=f"a3c-worker-{rank}", daemon=True) for rank in range(cfg.workers)]
        self.say(f"training {self.spec.name}: {cfg.workers} workers x {cfg.envs_per_worker} games, "
                 f"target {self.target:g}, TensorBoard: {self.run_dir}")
        for process in self.processes:
            process.start()
        self.started = time.monotonic()
        self.seconds_before = float(self.counters["seconds"])
        stop_reason = "interrupted"
        previous_sigterm = None
        if threading.current_thread() is threading.main_thread():
            # A SIGTERM (kill, a job scheduler, a closing terminal) stops training like Ctrl-C does:
            # workers stopped, checkpoint saved. Its default would end this process on the spot and
            # leave the workers and their games running with no one to stop them.
            previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            stop_reason = self._supervise()
        except KeyboardInterrupt:
            self.say("\ninterrupted: stopping workers and saving a checkpoint")
        finally:
            previous_sigint = None
            if previous_sigterm is not None:
                # A second Ctrl-C (or a SIGTERM sent to the whole process group) while the workers stop
                # and the checkpoint is written would lose it: ignore both until it is saved. The
                # shutdown is bounded (workers get 30 s, then are terminated).
                previous_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                self._stop_workers()
                self._sync_counters()
                if hasattr(self, "fps_mark"):  # what arrived since the last summary, so a short run logs too
                    self._write_summaries(self.counters["frames"], time.monotonic())
                self._save(self.latest_path)
            finally:
                if previous_sigterm is not None:
                    signal.signal(signal.SIGINT, previous_sigint)
                    signal.signal(signal.SIGTERM, previous_sigterm)
        result = TrainResult(stop_reason, self.counters["frames"], time.monotonic() - self.started,
                             best_eval=self.best_eval, run_dir=str(self.run_dir),
                             checkpoint_dir=str(self.model_dir), gifs=self.gifs)
        if stop_reason == "interrupted":
            self.say(f"checkpoint saved to {self.latest_path}; continue with --resume")
            self.writer.close()
            self.eval_env.close()
            return result
        if stop_reason == "target":
            # The periodic evaluation that reached the target was confirmed over final_eval_episodes
            # episodes with the same snapshot, which best.pt holds: that is the final evaluation.
            final = self.confirmed
            self.say(f"stopped (target {self.target:g} reached) after {_human(result.frames)} frames in "
                     f"{_clock(result.seconds)}")
        else:
            self.say(f"stopped ({stop_reason}) after {_human(result.frames)} frames in {_clock(result.seconds)}; "
                     f"final evaluation over {cfg.final_eval_episodes} greedy episodes...")
            final = self._evaluate(cfg.final_eval_episodes, "final")
            if final["mean"] >= self.best_eval or not self.best_path.exists():
                self.best_eval = max(self.best_eval, final["mean"])
                self._save(self.best_path, {"mean": final["mean"], "std": final["std"],
                                            "episodes": final["episodes"]}, model=self.eval_model)
            # The workers have stopped, so the evaluated snapshot is exactly what latest.pt holds.
            self._save(self.latest_path, {"mean": final["mean"], "std": final["std"],
                                          "episodes": final["episodes"]})
        result.final_eval = final
        self._log_final(final)
        self.writer.close()
        self.eval_env.close()
        self.say(f"final evaluation: {final['mean']:.1f} ± {final['std']:.1f} "
                 f"(min {final['min']:.0f}, max {final['max']:.0f}, mean length {final['length']:.1f} steps) "
                 f"over {final['episodes']} episodes")
        self.say(f"checkpoints: {self.best_path} (best), {self.latest_path}; GIFs: {self.gif_dir}/")
        result.best_eval = self.best_eval
        return result

    def _sync_counters(self) -> None:
        self.counters["frames"] = int(self.handles.frames.value)
        self.counters["seconds"] = self.seconds_before + time.monotonic() - self.started

    def _stop_workers(self) -> None:
        self.handles.stop.set()
        deadline = time.monotonic() + 30
        while any(p.is_alive() for p in self.processes) and time.monotonic() < deadline:
            self._drain(block_seconds=0.1)  # keep the queue flowing so no worker blocks on a full pipe
        for process in self.processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)

    def _drain(self, block_seconds: float) -> None:
        """Consume worker messages for up to ``block_seconds``: episodes, update stats, errors."""
        deadline = time.monotonic() + block_seconds
        while True:
            timeout = deadline - time.monotonic()
            try:
                kind, rank, payload = self.handles.stats.get(timeout=max(timeout, 0.0)) if timeout > 0 \
                    else self.handles.stats.get_nowait()
            except queue.Empty:
                return
            if kind == "episode":
                self.counters["episodes"] += 1
                self.recent_rewards.append(payload["reward"])
                frames = self.handles.frames.value
                self.writer.add_scalar("charts/episode_reward", payload["reward"], frames)
                self.writer.add_scalar("charts/episode_length", payload["length"], frames)
            elif kind == "update":
                self.counters["updates"] += 1
                for key, value in payload.items():
                    self.update_sums[key] += value
                self.update_count += 1
            elif kind == "error":
                self.worker_error = f"worker {rank} failed:\n{payload}"

    def _supervise(self) -> str:
        cfg = self.cfg
        self.recent_rewards: collections.deque = collections.deque(maxlen=100)
        self.update_sums: collections.defaultdict = collections.defaultdict(float)
        self.update_count = 0
        self.worker_error = ""
        now = time.monotonic()
        last = {"log": now, "summary": now, "eval": now, "gif": now, "checkpoint": now}
        self.fps_mark = (now, self.handles.frames.value)
        fps = 0.0
        last_eval = "-"
        while True:
            self._drain(block_seconds=0.25)
            now = time.monotonic()
            if self.worker_error:
                raise WorkerError(self.worker_error)
            dead = [p for p in self.processes if not p.is_alive()]
            if dead:
                raise WorkerError(f"{dead[0].name} exited unexpectedly (exit code {dead[0].exitcode})")
            frames = self.handles.frames.value
            self.counters["frames"] = frames
            if now - last["summary"] >= 2.0:
                fps = self._write_summaries(frames, now)
                last["summary"] = now
            elapsed = now - self.started
            if now - last["eval"] >= cfg.eval_interval:
                gif_due = cfg.gif_interval > 0 and now - last["gif"] >= cfg.gif_interval
                summary = self._evaluate(cfg.eval_episodes, f"{frames:09d}" if gif_due else None)
                if gif_due:
                    last["gif"] = now
                self.writer.add_scalar("eval/mean_reward", summary["mean"], frames)
                self.writer.add_scalar("eval/std_reward", summary["std"], frames)
                last_eval = f"{summary['mean']:.1f}"
                if summary["mean"] >= self.target:
                    # A short evaluation is noisy: confirm with final_eval_episodes episodes of the same
                    # snapshot before stopping, so a lucky run of 20 episodes does not end training early.
                    self.say(f"evaluation {summary['mean']:.1f} reached the target {self.target:g}; confirming "
                             f"over {cfg.final_eval_episodes} episodes")
                    results, gif_frames = evaluate(self.eval_env, self.eval_model, cfg.final_eval_episodes,
                                                   greedy=True, record_first=True)
                    confirm = summarize(results)
                    if confirm["mean"] >= self.target:
                        self._write_gif("final", gif_frames)
                    self.writer.add_scalar("eval/confirm_mean_reward", confirm["mean"], frames)
                    last_eval = f"{confirm['mean']:.1f}"
                    summary = confirm
                if summary["mean"] > self.best_eval:
                    self.best_eval = summary["mean"]
                    self._sync_counters()
                    self._save(self.best_path, {"mean": summary["mean"], "std": summary["std"],
                                                "episodes": summary["episodes"]}, model=self.eval_model)
                last["eval"] = time.monotonic()
                if summary["mean"] >= self.target and summary["episodes"] >= cfg.final_eval_episodes:
                    self.confirmed = summary
                    return "target"
            if now - last["checkpoint"] >= cfg.checkpoint_interval:
                self._sync_counters()
                self._save(self.latest_path)
                last["checkpoint"] = now
            if now - last["log"] >= cfg.log_interval:
                mean_reward = f"{np.mean(self.recent_rewards):.1f}" if self.recent_rewards else "-"
                self.say(f"frames {_human(frames):>7} | {fps:6.0f} fps | reward(last 100) {mean_reward:>6} | "
                         f"eval {last_eval:>6} (best {self.best_eval:.1f}) | {_clock(elapsed)} elapsed | "
                         f"ETA {self._eta(frames, fps, elapsed)}")
                last["log"] = now
            if cfg.max_frames and frames >= cfg.max_frames:
                return "max_frames"
            if cfg.max_minutes and elapsed >= cfg.max_minutes * 60:
                return "max_minutes"
            if self._stop_requested.is_set():
                return "requested"

    def _write_summaries(self, frames: int, now: float) -> float:
        """frames/s since the last call and the mean of each update statistic since then; returns the fps."""
        fps = (frames - self.fps_mark[1]) / max(now - self.fps_mark[0], 1e-9)
        self.fps_mark = (now, frames)
        self.writer.add_scalar("charts/fps", fps, frames)
        if self.update_count:
            for key, total in self.update_sums.items():
                if key not in ("frames", "steps"):  # counts, not statistics
                    self.writer.add_scalar(key, total / self.update_count, frames)
            self.update_sums.clear()
            self.update_count = 0
        return fps

    def _eta(self, frames: int, fps: float, elapsed: float) -> str:
        """Time left until the nearest of the frame and time limits (the target may come sooner)."""
        candidates = []
        if self.cfg.max_frames and fps > 0:
            candidates.append((self.cfg.max_frames - frames) / fps)
        if self.cfg.max_minutes:
            candidates.append(self.cfg.max_minutes * 60 - elapsed)
        return _clock(min(candidates)) if candidates else "--:--"
