"""The supervisor: builds the shared model, starts the workers, logs, evaluates, checkpoints, shuts down."""

from __future__ import annotations

import collections
import contextlib
import copy
import json
import math
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from doom_a3c.backends.local import LocalWorkers, WorkersFailing
from doom_a3c.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from doom_a3c.config import TrainConfig
from doom_a3c.envs import EngineError, EnvSpec, make_env
from doom_a3c.evaluation import evaluate, summarize
from doom_a3c.messages import EnvRestarted, EpisodeDone, UpdateDone, WorkerRestarted
from doom_a3c.model import ActorCritic
from doom_a3c.recording import write_gif
from doom_a3c.shared_optim import SharedAdam

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
RESTART_LINES = 10  # game restarts printed one by one; past that, the progress line counts them
# The evaluation game runs in this process, beside the workers: the pause after an evaluation is at least
# this many times as long as it took, so evaluations of long episodes (health_gathering: 20 episodes of up
# to 525 steps) take at most a tenth of the run (charts/eval_seconds logs what each took).
EVAL_PAUSE = 9.0


class OutputError(ValueError):
    """An output directory that cannot be written: found before anything starts."""


@dataclass
class TrainResult:
    """How a training run ended."""

    stop_reason: str  # "target", "max_frames", "max_minutes", "requested", "interrupted", "workers_failed"
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


def _interrupt(signum, frame) -> None:
    """Ctrl-C, SIGTERM or SIGHUP: stop training. Further signals are ignored from here on, so that a second
    one (a signal sent to the whole process group, an impatient Ctrl-C) cannot cut the shutdown short."""
    for sig in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals(handler) -> None:
    """Route Ctrl-C, SIGTERM and SIGHUP to ``handler`` for the duration (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Trainer:
    """Runs A3C for one environment; ``train()`` returns when a stop condition is met."""

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, out=sys.stdout):
        self.cfg, self.spec, self.out = cfg, spec, out
        self.target = spec.target_reward if math.isnan(cfg.target_reward) else cfg.target_reward
        self.run_name = cfg.run_name or datetime.now().strftime("%Y%m%d-%H%M%S")
        self.model_dir = Path(cfg.models_dir) / spec.name
        self.gif_dir = Path(cfg.frames_dir) / spec.name
        self.latest_path = self.model_dir / "latest.pt"
        self.best_path = self.model_dir / "best.pt"
        self._stop_requested = threading.Event()
        self.gifs: list[str] = []
        self.resumed_from: int | None = None
        self._write_failures: set[str] = set()
        self.workers: LocalWorkers | None = None
        self.counters = {"frames": 0, "updates": 0, "episodes": 0, "seconds": 0.0, "env_restarts": 0,
                         "worker_restarts": 0}
        self._eval_env_starts = 0
        # Greedy actions can be degenerate where sampling is not (navigation): the scenario says which.
        self.eval_mode = cfg.eval_mode or getattr(spec, "eval_mode", "greedy")
        self.eval_generator = torch.Generator().manual_seed(cfg.seed)  # sampled evaluations repeat
        self.shapes = bool(getattr(spec, "shaping", None))
        self.recent_shaped: collections.deque = collections.deque(maxlen=100)
        self.recent_rewards: collections.deque = collections.deque(maxlen=100)
        self.update_sums: collections.defaultdict = collections.defaultdict(float)
        self.update_count = 0

    @property
    def run_dir(self) -> Path:
        """``runs/<scenario>/<run>/``: TensorBoard events, config.json, worker_errors.log."""
        return Path(self.cfg.runs_dir) / self.spec.name / self.run_name

    def request_stop(self) -> None:
        """Ask a running ``train()`` (from another thread) to stop as if a limit had been reached."""
        self._stop_requested.set()

    def say(self, line: str) -> None:
        """Print one line and flush, so progress shows up when piped too."""
        print(line, file=self.out, flush=True)

    # -- setup --------------------------------------------------------------------------------------
    def _check_outputs(self) -> None:
        """Every output directory must take a file now, not after the first minute of training."""
        cfg = self.cfg
        for option, root, path in (("--runs-dir", cfg.runs_dir, self.run_dir.parent),
                                   ("--models-dir", cfg.models_dir, self.model_dir),
                                   ("--frames-dir", cfg.frames_dir, self.gif_dir)):
            try:
                path.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryFile(dir=path):
                    pass
            except OSError as err:
                raise OutputError(f"{option} {root}: cannot write to {path} ({err.strerror or err})") from err

    def _load_resume(self) -> dict | None:
        """The checkpoint to continue from (``--resume``): its run name too, unless one is given."""
        if not self.cfg.resume:
            return None
        payload = load_checkpoint(self.latest_path)
        if payload["scenario"].get("name") != self.spec.name:
            raise CheckpointError(f"{self.latest_path}: trained on '{payload['scenario'].get('name')}', "
                                  f"not '{self.spec.name}'")
        if not self.cfg.run_name and payload.get("run", {}).get("name"):
            self.run_name = str(payload["run"]["name"])
        return payload

    def _build(self, payload: dict | None) -> None:
        cfg = self.cfg
        # The evaluation env comes first: its spaces pick the model's encoder and head.
        self.eval_env = self._make_eval_env()
        spaces = (self.eval_env.observation_space, self.eval_env.action_space)
        self.model = ActorCritic.from_spaces(*spaces, hidden_size=cfg.hidden_size, lstm=cfg.lstm)
        self.best_eval = -math.inf
        optimizer_state = None
        if payload is not None:
            self.model = model_from_checkpoint(payload, self.latest_path, spaces[0].shape, action_space=spaces[1])
            self.counters.update(payload["counters"])
            self.best_eval = float(payload.get("evaluation", {}).get("best_mean", -math.inf))
            optimizer_state = payload.get("optimizer")
            self.resumed_from = int(self.counters["frames"])
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

    def _make_eval_env(self):
        seed = self.cfg.seed + 100_000 + 1_000_003 * self._eval_env_starts  # a replacement gets a new seed
        self._eval_env_starts += 1
        return make_env(self.spec, seed=seed, render_mode="rgb_array",  # GIFs need frames
                        engine_timeout=self.cfg.env_timeout)

    def _open_writer(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # A resumed run writes into the same directory; purge_step hides what the interrupted run had
        # logged past its last checkpoint, so the curves continue without a doubled stretch.
        self.writer = SummaryWriter(str(self.run_dir), purge_step=self.resumed_from)
        settings = {**self.cfg.to_dict(), "target_reward": self.target, "run_name": self.run_name,
                    "eval_mode": self.eval_mode}
        scenario = self.spec.to_dict()
        step = self.counters["frames"]
        self.writer.add_text("config/train", _markdown_table(settings), step)
        self.writer.add_text("config/scenario", _markdown_table(scenario), step)
        (self.run_dir / "config.json").write_text(json.dumps({"train": settings, "scenario": scenario},
                                                             indent=2, default=str))

    # -- checkpoints, GIFs and evaluation ------------------------------------------------------------
    def _save(self, path: Path, evaluation: dict | None = None, model: ActorCritic | None = None) -> bool:
        """Checkpoint ``model`` (default: the shared one) with the optimizer state, copied under the update
        lock so that no worker's step lands half-way through the copy. A write that fails (disk full) leaves
        the previous file as it was; it is reported once and training goes on."""
        lock = self.workers.update_lock() if self.workers is not None else contextlib.nullcontext()
        with lock:
            source = self.model if model is None else model
            weights = {k: v.clone() for k, v in source.state_dict().items()}
            optimizer_state = copy.deepcopy(self.optimizer.state_dict())
        snapshot = ActorCritic(**self.model.model_kwargs())
        snapshot.load_state_dict(weights)
        evaluation = {"best_mean": self.best_eval, **(evaluation or {})}
        try:
            save_checkpoint(path, model=snapshot, optimizer_state=optimizer_state, scenario=self.spec.to_dict(),
                            config=self.cfg.to_dict(), counters=dict(self.counters), evaluation=evaluation,
                            run={"name": self.run_name})
        except OSError as err:
            self._write_failed(path, err, "the previous one is intact")
            return False
        self._write_failures.discard(str(path))
        return True

    def _write_failed(self, path: Path, err: OSError, consequence: str) -> None:
        if str(path) not in self._write_failures:
            self._write_failures.add(str(path))
            self.say(f"could not write {path} ({err.strerror or err}); {consequence}; training goes on")

    def _play_eval(self, episodes: int, record: bool):
        """Evaluation episodes (greedy or sampled, as the scenario says) with the evaluation snapshot; a
        crashed game is replaced and the episodes played again."""
        for attempt in (1, 2):
            try:
                return evaluate(self.eval_env, self.eval_model, episodes, greedy=self.eval_mode == "greedy",
                                record_first=record, generator=self.eval_generator)
            except EngineError as err:
                self._replace_eval_env(str(err))
                if attempt == 2:
                    raise

    def _replace_eval_env(self, reason: str) -> None:
        self.eval_env.close()
        self._on_env_restart(EnvRestarted(-1, 0, reason))
        self.eval_env = self._make_eval_env()

    def _evaluate(self, episodes: int, gif_tag: str | None) -> dict:
        """Evaluation episodes with a fresh snapshot of the shared model; a GIF of the first if tagged."""
        self.eval_model.load_state_dict(self.model.state_dict())
        results, frames = self._play_eval(episodes, record=gif_tag is not None)
        if gif_tag is not None and frames:
            self._write_gif(gif_tag, frames)
        return summarize(results)

    def _write_gif(self, tag: str, frames: list) -> None:
        path = self.gif_dir / f"{self.run_name}-{tag}.gif"
        try:
            self.gifs.append(str(write_gif(path, frames, fps=self.eval_env.steps_per_second)))
        except OSError as err:
            self._write_failed(self.gif_dir, err, "no GIF this time")

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
        self.writer.add_text("eval/final", json.dumps({**final, "mode": self.eval_mode}), step)

    # -- the run ------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Train until the target, ``max_frames`` or ``max_minutes``; Ctrl-C or SIGTERM saves and returns.

        Raises OutputError or CheckpointError (bad input) before anything is started."""
        torch.set_num_threads(1)
        torch.manual_seed(self.cfg.seed)
        self._check_outputs()
        payload = self._load_resume()
        self.started = time.monotonic()
        # A SIGTERM (kill, a job scheduler, `timeout`) or SIGHUP (a closed terminal) stops training like
        # Ctrl-C does: workers stopped, checkpoint saved. Their defaults would end this process on the spot.
        with _signals(_interrupt):
            try:
                self._build(payload)
                self._open_writer()
                if self.cfg.baseline_episodes and payload is None:
                    self._random_baseline(self.cfg.baseline_episodes)
            except KeyboardInterrupt:
                self.say("\ninterrupted before training started; nothing to save")
                self._close()
                return TrainResult("interrupted", self.counters["frames"], 0.0, run_dir=str(self.run_dir))
            stop_reason = self._run_workers()
            try:
                return self._finish(stop_reason)
            except KeyboardInterrupt:
                self.say(f"\ninterrupted during the final evaluation; {self.latest_path} holds the trained model")
                self._close()
                return TrainResult("interrupted", self.counters["frames"], self._elapsed(),
                                   run_dir=str(self.run_dir), checkpoint_dir=str(self.model_dir), gifs=self.gifs)

    def _run_workers(self) -> str:
        """Start the workers, supervise them until a stop condition, stop them, save latest.pt."""
        cfg = self.cfg
        self.workers = LocalWorkers(cfg, self.spec, self.model, self.optimizer, frames=self.counters["frames"],
                                    error_log=self.run_dir / "worker_errors.log")
        resumed = f", resuming {self.run_name} at {_human(self.resumed_from)} frames " \
                  f"({_clock(self.counters['seconds'])} trained)" if self.resumed_from is not None else ""
        self.say(f"training {self.spec.name}: {cfg.workers} workers x {cfg.envs_per_worker} games, "
                 f"target {self.target:g} ({self.eval_mode} evaluation){resumed}, TensorBoard: {self.run_dir}")
        self.seconds_before = float(self.counters["seconds"])
        self.started = time.monotonic()
        stop_reason = "interrupted"
        self.failure = ""
        try:
            self.workers.start()
            stop_reason = self._supervise()
        except KeyboardInterrupt:
            self.say("\ninterrupted: stopping workers and saving a checkpoint")
        except WorkersFailing as err:
            stop_reason, self.failure = "workers_failed", str(err)
        finally:
            # A second Ctrl-C (or a SIGTERM sent to the whole process group) while the workers stop and
            # the checkpoint is written would lose it: ignore them until it is saved. The shutdown is
            # bounded (workers get 30 s, then are killed).
            with _signals(signal.SIG_IGN):
                for message in self.workers.stop():
                    self._handle(message)
                self._sync_counters()
                if hasattr(self, "fps_mark"):  # what arrived since the last summary, so a short run logs too
                    self._write_summaries(self.counters["frames"], time.monotonic())
                self._save(self.latest_path)
        return stop_reason

    def _finish(self, stop_reason: str) -> TrainResult:
        """The final evaluation (unless interrupted or failing), best.pt, the closing lines."""
        cfg = self.cfg
        result = TrainResult(stop_reason, self.counters["frames"], self._elapsed(), best_eval=self.best_eval,
                             run_dir=str(self.run_dir), checkpoint_dir=str(self.model_dir), gifs=self.gifs)
        if stop_reason == "interrupted":
            self.say(f"checkpoint saved to {self.latest_path}; continue with --resume")
            self._close()
            return result
        if stop_reason == "workers_failed":
            self.say(f"training stopped: {self.failure}. Tracebacks: {self.run_dir / 'worker_errors.log'}; "
                     f"checkpoint saved to {self.latest_path} (continue with --resume)")
            self._close()
            return result
        if stop_reason == "target":
            # The periodic evaluation that reached the target was confirmed over final_eval_episodes
            # episodes with the same snapshot, which best.pt holds: that is the final evaluation.
            final = self.confirmed
            self.say(f"stopped (target {self.target:g} reached) after {_human(result.frames)} frames in "
                     f"{_clock(result.seconds)}")
        else:
            self.say(f"stopped ({stop_reason}) after {_human(result.frames)} frames in {_clock(result.seconds)}; "
                     f"final evaluation over {cfg.final_eval_episodes} episodes, {self.eval_mode} actions...")
            final = self._evaluate(cfg.final_eval_episodes, "final")
            if final["mean"] >= self.best_eval or not self.best_path.exists():
                self.best_eval = max(self.best_eval, final["mean"])
                self._save(self.best_path, {"mean": final["mean"], "std": final["std"],
                                            "episodes": final["episodes"], "mode": self.eval_mode}, model=self.eval_model)
            # The workers have stopped, so the evaluated snapshot is exactly what latest.pt holds.
            self._save(self.latest_path, {"mean": final["mean"], "std": final["std"],
                                          "episodes": final["episodes"], "mode": self.eval_mode})
        result.final_eval = final
        self._log_final(final)
        self._close()
        self.say(f"final evaluation: {final['mean']:.1f} ± {final['std']:.1f} "
                 f"(min {final['min']:.0f}, max {final['max']:.0f}, mean length {final['length']:.1f} steps) "
                 f"over {final['episodes']} episodes, {self.eval_mode} actions")
        self.say(f"checkpoints: {self.best_path} (best), {self.latest_path}; GIFs: {self.gif_dir}/")
        result.best_eval = self.best_eval
        return result

    def _close(self) -> None:
        if hasattr(self, "writer"):
            self.writer.close()
        if hasattr(self, "eval_env"):
            self.eval_env.close()

    def _elapsed(self) -> float:
        """Training time over the whole run, resumes included."""
        return getattr(self, "seconds_before", 0.0) + time.monotonic() - self.started

    def _sync_counters(self) -> None:
        self.counters["frames"] = self.workers.total_frames()
        self.counters["seconds"] = self._elapsed()

    # -- what the workers say -----------------------------------------------------------------------
    def _handle(self, message) -> None:
        frames = self.counters["frames"]
        if isinstance(message, EpisodeDone):
            self.counters["episodes"] += 1
            self.recent_rewards.append(message.reward)
            self.writer.add_scalar("charts/episode_reward", message.reward, frames)
            if message.shaped is not None:  # what the learner saw, beside the game's own score
                self.recent_shaped.append(message.shaped)
                self.writer.add_scalar("charts/episode_shaped_reward", message.shaped, frames)
            self.writer.add_scalar("charts/episode_length", message.length, frames)
        elif isinstance(message, UpdateDone):
            self.counters["updates"] += 1
            for key, value in message.stats.items():
                self.update_sums[key] += value
            self.update_count += 1
        elif isinstance(message, EnvRestarted):
            self._on_env_restart(message)
        elif isinstance(message, WorkerRestarted):
            self.counters["worker_restarts"] += 1
            self.writer.add_scalar("charts/worker_restarts", self.counters["worker_restarts"], frames)
            self.say(f"worker {message.rank} died ({message.reason}); started it again "
                     f"({message.count} restart{'s' if message.count > 1 else ''} in this session, "
                     f"at most {self.cfg.max_worker_restarts} in 10 minutes)")

    def _on_env_restart(self, message: EnvRestarted) -> None:
        self.counters["env_restarts"] += 1  # logged as charts/env_restarts with every summary
        count = self.counters["env_restarts"]
        if count <= RESTART_LINES:
            where = "the evaluation game" if message.rank < 0 else f"game {message.game} of worker {message.rank}"
            more = "; further restarts are counted in the progress line" if count == RESTART_LINES else ""
            self.say(f"{where} restarted: {message.reason}{more}")

    def _supervise(self) -> str:
        cfg = self.cfg
        now = time.monotonic()
        last = {"log": now, "summary": now, "eval": now, "gif": now, "checkpoint": now}
        self.fps_mark = (now, self.workers.total_frames())
        fps = 0.0
        last_eval = "-"
        eval_seconds = 0.0  # how long the last periodic evaluation took
        while True:
            for message in self.workers.poll(block_seconds=0.25):
                self._handle(message)
            now = time.monotonic()
            frames = self.workers.total_frames()
            self.counters["frames"] = frames
            if now - last["summary"] >= 2.0:
                fps = self._write_summaries(frames, now)
                last["summary"] = now
            if now - last["eval"] >= max(cfg.eval_interval, EVAL_PAUSE * eval_seconds):
                gif_due = cfg.gif_interval > 0 and now - last["gif"] >= cfg.gif_interval
                summary = self._evaluate(cfg.eval_episodes, f"{frames:09d}" if gif_due else None)
                eval_seconds = time.monotonic() - now
                self.writer.add_scalar("charts/eval_seconds", eval_seconds, frames)
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
                    results, gif_frames = self._play_eval(cfg.final_eval_episodes, record=True)
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
                                                "episodes": summary["episodes"], "mode": self.eval_mode}, model=self.eval_model)
                last["eval"] = time.monotonic()
                if summary["mean"] >= self.target and summary["episodes"] >= cfg.final_eval_episodes:
                    self.confirmed = summary
                    return "target"
            if now - last["checkpoint"] >= cfg.checkpoint_interval:
                self._sync_counters()
                self._save(self.latest_path)
                last["checkpoint"] = now
            elapsed = self._elapsed()
            if now - last["log"] >= cfg.log_interval:
                self.say(self._progress_line(frames, fps, last_eval, elapsed))
                last["log"] = now
            if cfg.max_frames and frames >= cfg.max_frames:
                return "max_frames"
            if cfg.max_minutes and elapsed >= cfg.max_minutes * 60:
                return "max_minutes"
            if self._stop_requested.is_set():
                return "requested"

    def _progress_line(self, frames: int, fps: float, last_eval: str, elapsed: float) -> str:
        mean_reward = f"{np.mean(self.recent_rewards):.1f}" if self.recent_rewards else "-"
        if self.recent_shaped:
            mean_reward += f" (shaped {np.mean(self.recent_shaped):.1f})"
        mode = "" if self.eval_mode == "greedy" else f" {self.eval_mode}"
        line = (f"frames {_human(frames):>7} | {fps:6.0f} fps | reward(last 100) {mean_reward:>6} | "
                f"eval{mode} {last_eval:>6} (best {self.best_eval:.1f}) | {_clock(elapsed)} elapsed | "
                f"ETA {self._eta(frames, fps, elapsed)}")
        for key, what in (("env_restarts", "game"), ("worker_restarts", "worker")):
            if self.counters[key]:
                line += f" | {self.counters[key]} {what} restart{'s' if self.counters[key] > 1 else ''}"
        if self.resumed_from is not None:
            line += f" | resumed at {_human(self.resumed_from)}"
        return line

    def _write_summaries(self, frames: int, now: float) -> float:
        """frames/s since the last call and the mean of each update statistic since then; returns the fps."""
        fps = (frames - self.fps_mark[1]) / max(now - self.fps_mark[0], 1e-9)
        self.fps_mark = (now, frames)
        self.writer.add_scalar("charts/fps", fps, frames)
        self.writer.add_scalar("charts/env_restarts", self.counters["env_restarts"], frames)
        if self.update_count:
            for key, total in self.update_sums.items():
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
