"""The supervisor: sets a run up, starts the workers on a backend, and runs the schedule (summaries,
evaluations, checkpoints, stop conditions) until the run ends; then the final evaluation and shutdown.

The parts it schedules live beside it: ``summaries.py`` (TensorBoard and the progress line),
``evaluator.py`` (evaluations, best.pt, GIFs) and ``backends/`` (where the workers run)."""

from __future__ import annotations

import contextlib
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

import torch

from doom_a3c.backends import OptimizerStateError, WorkersFailing, make_backend
from doom_a3c.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from doom_a3c.config import TrainConfig
from doom_a3c.envs import EnvSpec
from doom_a3c.evaluator import Evaluator
from doom_a3c.messages import EnvRestarted, EpisodeDone, UpdateDone, WorkerRestarted
from doom_a3c.model import ActorCritic
from doom_a3c.summaries import Summaries, clock, human, reward_digits

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
RESTART_LINES = 10  # game restarts printed one by one; past that, the progress line counts them


class OutputError(ValueError):
    """An output directory that cannot be written: found before anything starts."""


@dataclass
class TrainResult:
    """How a training run ended."""

    stop_reason: str  # "target", "max_frames", "max_minutes", "requested", "interrupted", "workers_failed"
    frames: int
    seconds: float
    # Where the target was reached: the frames and training seconds of the weights that reached it (the
    # workers train on while the confirmation plays, so ``frames`` is a little more); None otherwise.
    target_frames: int | None = None
    target_seconds: float | None = None
    final_eval: dict = field(default_factory=dict)
    best_eval: float = -math.inf
    run_dir: str = ""
    checkpoint_dir: str = ""
    gifs: list[str] = field(default_factory=list)


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
        self.cfg, self.spec = cfg, spec
        self.target = spec.target_reward if math.isnan(cfg.target_reward) else cfg.target_reward
        self.run_name = cfg.run_name or datetime.now().strftime("%Y%m%d-%H%M%S")
        self.model_dir = Path(cfg.models_dir) / spec.name
        self.latest_path = self.model_dir / "latest.pt"
        self.summaries = Summaries(out, reward_digits(self.target))
        self.say = self.summaries.say
        self.workers = None  # the backend: backends/local.py or backends/ray_cluster.py
        self.evaluator: Evaluator | None = None
        self.resumed_from: int | None = None
        self.counters = {"frames": 0, "updates": 0, "episodes": 0, "seconds": 0.0, "env_restarts": 0,
                         "worker_restarts": 0}
        self.seconds_before = 0.0
        self.started = time.monotonic()
        self.failure = ""
        self.target_reached_at: tuple = (None, None)  # (frames, seconds) of the weights that reached the target
        self._stop_requested = threading.Event()
        self._write_failures: set[str] = set()
        self.latest_frames: int | None = None  # the frames of the last latest.pt this session wrote
        self.final_saved = False  # whether the checkpoint at the end of training was written

    @property
    def run_dir(self) -> Path:
        """``runs/<scenario>/<run>/``: TensorBoard events, config.json, worker_errors.log."""
        return Path(self.cfg.runs_dir) / self.spec.name / self.run_name

    def request_stop(self) -> None:
        """Ask a running ``train()`` (from another thread) to stop as if a limit had been reached."""
        self._stop_requested.set()

    # -- the run ------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        """Train until the target, ``max_frames`` or ``max_minutes``; Ctrl-C or SIGTERM saves and returns.

        Raises OutputError or CheckpointError (bad input) before anything is started."""
        torch.set_num_threads(1)
        torch.manual_seed(self.cfg.seed)
        self._check_outputs()
        payload = self._load_resume()
        # A SIGTERM (kill, a job scheduler, `timeout`) or SIGHUP (a closed terminal) stops training like
        # Ctrl-C does: workers stopped, checkpoint saved. Their defaults would end this process on the spot.
        with _signals(_interrupt):
            try:
                self._setup(payload)
                if self.cfg.baseline_episodes and payload is None:
                    self.evaluator.random_baseline(self.cfg.baseline_episodes, self.counters["frames"])
            except KeyboardInterrupt:
                self.say("\ninterrupted before training started; nothing to save")
                self._close()
                return TrainResult("interrupted", self.counters["frames"], 0.0, run_dir=str(self.run_dir))
            except BaseException:  # bad input found while setting up (a cluster that cannot be joined)
                self._close()
                raise
            stop_reason = self._run_workers()
            try:
                return self._finish(stop_reason)
            except KeyboardInterrupt:
                self.say(f"\ninterrupted during the final evaluation; {self.latest_path} holds the trained model")
                self._close()
                return self._result("interrupted")

    def _check_outputs(self) -> None:
        """Every output directory must take a file now, not after the first minute of training."""
        cfg = self.cfg
        for option, root, path in (("--runs-dir", cfg.runs_dir, self.run_dir.parent),
                                   ("--models-dir", cfg.models_dir, self.model_dir),
                                   ("--frames-dir", cfg.frames_dir, Path(cfg.frames_dir) / self.spec.name)):
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

    def _setup(self, payload: dict | None) -> None:
        """The evaluator (its game's spaces pick the model), the model, the workers' backend, the events."""
        cfg = self.cfg
        self.evaluator = Evaluator(cfg, self.spec, self.target, self.summaries, Path(cfg.frames_dir) / self.spec.name,
                                   self.run_name, save=self._save, on_env_restart=self._on_env_restart)
        spaces = self.evaluator.spaces
        model = ActorCritic.from_spaces(*spaces, hidden_size=cfg.hidden_size, lstm=cfg.lstm,
                                        **cfg.encoder_options())
        optimizer_state = None
        if payload is not None:
            model = model_from_checkpoint(payload, self.latest_path, spaces[0].shape, action_space=spaces[1])
            self.counters.update(payload["counters"])
            self.evaluator.best = float(payload.get("evaluation", {}).get("best_mean", -math.inf))
            optimizer_state = payload.get("optimizer")
            self.resumed_from = int(self.counters["frames"])
        self.model_kwargs = model.model_kwargs()
        self.evaluator.model = ActorCritic(**self.model_kwargs)
        try:
            self.workers = make_backend(cfg, self.spec, model, optimizer_state, frames=self.counters["frames"],
                                        error_log=self.run_dir / "worker_errors.log")
        except OptimizerStateError as err:
            raise CheckpointError(f"{self.latest_path}: {err}") from err
        settings = {**cfg.to_dict(), "target_reward": self.target, "run_name": self.run_name,
                    "eval_mode": self.evaluator.mode}
        self.summaries.open(self.run_dir, settings, self.spec.to_dict(), self.counters["frames"],
                            purge_step=self.resumed_from)

    def _run_workers(self) -> str:
        """Start the workers, supervise them until a stop condition, stop them, save latest.pt."""
        cfg = self.cfg
        resumed = f", resuming {self.run_name} at {human(self.resumed_from)} frames " \
                  f"({clock(self.counters['seconds'])} trained)" if self.resumed_from is not None else ""
        self.say(f"training {self.spec.name}: {cfg.workers} workers x {cfg.envs_per_worker} games, target "
                 f"{self.target:g} ({self.evaluator.mode} evaluation){resumed}, TensorBoard: {self.run_dir}")
        self.seconds_before = float(self.counters["seconds"])
        self.started = time.monotonic()
        stop_reason = "interrupted"
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
                if self.summaries.fps_mark is not None:  # what arrived since the last window, so a short run logs too
                    self.summaries.window(self.counters["frames"], time.monotonic(), self.counters["env_restarts"])
                self.final_saved = self._save(self.latest_path)
        return stop_reason

    def _supervise(self) -> str:
        """The schedule: messages, summary windows, evaluations, checkpoints and progress lines, until a
        stop condition holds; returns its name."""
        cfg = self.cfg
        now = time.monotonic()
        last = {"log": now, "summary": now, "checkpoint": now}
        self.summaries.fps_mark = (now, self.workers.total_frames())
        fps = 0.0
        while True:
            for message in self.workers.poll(block_seconds=0.25):
                self._handle(message)
            now = time.monotonic()
            frames = self.counters["frames"] = self.workers.total_frames()
            if now - last["summary"] >= 2.0:
                fps = self.summaries.window(frames, now, self.counters["env_restarts"])
                last["summary"] = now
            if self.evaluator.due(now, self.summaries.training_mean()):
                weights, _ = self.workers.snapshot()
                self._sync_counters()
                at = (self.counters["frames"], self._elapsed())
                self.confirmed = self.evaluator.periodic(weights, at[0])
                if self.confirmed is not None:
                    self.target_reached_at = at
                    return "target"
            if now - last["checkpoint"] >= cfg.checkpoint_interval:
                self._sync_counters()
                self._save(self.latest_path)
                last["checkpoint"] = now
            elapsed = self._elapsed()
            if now - last["log"] >= cfg.log_interval:
                self.say(self.summaries.progress_line(
                    frames, fps, self.evaluator.last_result, self.evaluator.best, self.evaluator.mode, elapsed,
                    self._eta(frames, fps, elapsed), self.counters, self.resumed_from) + self._stage_note(frames))
                last["log"] = now
            if cfg.max_frames and frames >= cfg.max_frames:
                return "max_frames"
            if cfg.max_minutes and elapsed >= cfg.max_minutes * 60:
                return "max_minutes"
            if self._stop_requested.is_set():
                return "requested"

    def _finish(self, stop_reason: str) -> TrainResult:
        """The final evaluation (unless interrupted or failing), best.pt, the closing lines."""
        cfg, evaluator = self.cfg, self.evaluator
        result = self._result(stop_reason)
        if stop_reason in ("interrupted", "workers_failed"):
            if self.final_saved:
                kept = f"checkpoint saved to {self.latest_path}"
            elif self.latest_frames is not None or (self.resumed_from is not None and self.latest_path.exists()):
                at = self.latest_frames if self.latest_frames is not None else self.resumed_from
                kept = f"the last checkpoint, {self.latest_path} at {human(at)} frames, is kept"
            else:
                kept = "no checkpoint could be saved"
            resume = "" if kept.startswith("no ") else " (continue with --resume)"
            if stop_reason == "workers_failed":
                self.say(f"training stopped: {self.failure}. Tracebacks: {self.run_dir / 'worker_errors.log'}; "
                         f"{kept}{resume}")
            else:
                self.say(f"{kept}{resume.replace(' (', '; ').rstrip(')')}")
            self._close()
            return result
        if stop_reason == "target":
            # The periodic evaluation that reached the target was confirmed over final_eval_episodes
            # episodes with the same weights, which best.pt holds: that is the final evaluation.
            final = self.confirmed
            self.say(f"stopped (target {self.target:g} reached by the weights of {human(result.target_frames)} "
                     f"frames, {clock(result.target_seconds)}) after {human(result.frames)} frames in "
                     f"{clock(result.seconds)}")
        else:
            self.say(f"stopped ({stop_reason}) after {human(result.frames)} frames in {clock(result.seconds)}; "
                     f"final evaluation over {cfg.final_eval_episodes} episodes, {evaluator.mode} actions...")
            # The workers have stopped, so the evaluated weights are exactly what latest.pt holds.
            weights, _ = self.workers.snapshot()
            final = evaluator.evaluate(weights, cfg.final_eval_episodes, "final", result.frames, "final evaluation")
            evaluator.keep_if_best(final, weights, even_if_equal=True)
            self._save(self.latest_path, evaluation=evaluator.record_of(final))
        result.final_eval, result.best_eval = final, evaluator.best
        step = self.counters["frames"]
        for key in ("mean", "std", "min", "max", "length"):
            self.summaries.scalar(f"eval/final_{key}", final[key], step)
        self.summaries.text("eval/final", json.dumps({**final, "mode": evaluator.mode}), step)
        self._close()
        d = self.summaries.digits
        e = d if d > 1 else 0  # whole scores' extremes without decimals; fractions of 1 with theirs
        self.say(f"final evaluation: {final['mean']:.{d}f} ± {final['std']:.{d}f} "
                 f"(min {final['min']:.{e}f}, max {final['max']:.{e}f}, mean length {final['length']:.1f} steps) "
                 f"over {final['episodes']} episodes, {evaluator.mode} actions")
        self.say(f"checkpoints: {evaluator.best_path} (best), {self.latest_path}; GIFs: {evaluator.gif_dir}/")
        return result

    def _result(self, stop_reason: str) -> TrainResult:
        evaluator = self.evaluator
        target_frames, target_seconds = self.target_reached_at if stop_reason == "target" else (None, None)
        return TrainResult(stop_reason, self.counters["frames"], self._elapsed(), target_frames, target_seconds,
                           best_eval=evaluator.best,
                           run_dir=str(self.run_dir), checkpoint_dir=str(self.model_dir), gifs=evaluator.gifs)

    # -- checkpoints ------------------------------------------------------------------------------------
    def _save(self, path: Path, weights: dict | None = None, evaluation: dict | None = None) -> bool:
        """Checkpoint ``weights`` (default: the trained ones) with the workers' Adam state and the counters.
        A write that fails (disk full) leaves the previous file as it was; it is reported once and training
        goes on."""
        try:
            trained, optimizer_state = self.workers.snapshot()
        except WorkersFailing as err:  # the parameter server's machine is gone, and the weights with it
            self.say(f"could not save {path}: {err}")
            return False
        snapshot = ActorCritic(**self.model_kwargs)
        snapshot.load_state_dict(trained if weights is None else weights)
        evaluation = {"best_mean": self.evaluator.best, **(evaluation or {})}
        try:
            save_checkpoint(path, model=snapshot, optimizer_state=optimizer_state, scenario=self.spec.to_dict(),
                            config=self.cfg.to_dict(), counters=dict(self.counters), evaluation=evaluation,
                            run={"name": self.run_name})
        except OSError as err:
            if str(path) not in self._write_failures:
                self._write_failures.add(str(path))
                self.say(f"could not write {path} ({err.strerror or err}); the previous one is intact; "
                         f"training goes on")
            return False
        self._write_failures.discard(str(path))
        if path == self.latest_path:
            self.latest_frames = int(self.counters["frames"])
        return True

    def _stage_note(self, frames: int) -> str:
        """Where a curriculum is under way, its stage for the progress line (and the skill in TensorBoard)."""
        stage, stages = self.spec.stage(frames), self.spec.stage(2**62)  # the stage after the last: as declared
        if stage == stages:
            return ""
        skill = self.spec.at_stage(stage).doom_skill
        self.summaries.scalar("charts/curriculum_skill", skill, frames)
        return f" | curriculum stage {stage + 1} of {stages}: skill {skill}"

    def _close(self) -> None:
        self.summaries.close()
        if self.evaluator is not None:
            self.evaluator.close()
        if self.workers is not None:
            self.workers.close()

    # -- counters and what the workers say ----------------------------------------------------------------
    def _elapsed(self) -> float:
        """Training time over the whole run, resumes included."""
        return self.seconds_before + time.monotonic() - self.started

    def _sync_counters(self) -> None:
        self.counters["frames"] = self.workers.total_frames()
        self.counters["seconds"] = self._elapsed()

    def _eta(self, frames: int, fps: float, elapsed: float) -> str:
        """Time left until the nearest of the frame and time limits (the target may come sooner)."""
        candidates = []
        if self.cfg.max_frames and fps > 0:
            candidates.append((self.cfg.max_frames - frames) / fps)
        if self.cfg.max_minutes:
            candidates.append(self.cfg.max_minutes * 60 - elapsed)
        return clock(min(candidates)) if candidates else "--:--"

    def _handle(self, message) -> None:
        self.summaries.record(message, self.counters["frames"])
        if isinstance(message, EpisodeDone):
            self.counters["episodes"] += 1
        elif isinstance(message, UpdateDone):
            self.counters["updates"] += 1
        elif isinstance(message, EnvRestarted):
            self._on_env_restart(message)
        elif isinstance(message, WorkerRestarted):
            self.counters["worker_restarts"] += 1
            self.summaries.scalar("charts/worker_restarts", self.counters["worker_restarts"], self.counters["frames"])
            self.say(f"worker {message.rank} died ({message.reason}); started it again "
                     f"({message.count} restart{'s' if message.count > 1 else ''} in this session, "
                     f"at most {self.cfg.max_worker_restarts} in 10 minutes)")

    def _on_env_restart(self, message: EnvRestarted) -> None:
        self.counters["env_restarts"] += 1  # logged as charts/env_restarts with every summary window
        count = self.counters["env_restarts"]
        if count <= RESTART_LINES:
            where = "the evaluation game" if message.rank < 0 else f"game {message.game} of worker {message.rank}"
            more = "; further restarts are counted in the progress line" if count == RESTART_LINES else ""
            self.say(f"{where} restarted: {message.reason}{more}")
