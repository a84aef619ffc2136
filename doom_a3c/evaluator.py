"""The evaluator: periodic evaluations, the confirmation of a reached target, the final evaluation, best.pt
and the GIFs, all played in the supervisor's process on snapshots of the trained weights."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch

from doom_a3c.config import TrainConfig
from doom_a3c.envs import EngineError, EnvSpec, make_env
from doom_a3c.evaluation import evaluate, summarize
from doom_a3c.explain import Explainer, action_labels, colour_input
from doom_a3c.messages import EnvRestarted
from doom_a3c.model import ActorCritic
from doom_a3c.progress import EpisodeProgress, on_terminal
from doom_a3c.recording import write_gif
from doom_a3c.summaries import Summaries

# The evaluation game runs beside the workers: the pause after an evaluation is at least this many times as
# long as it took, so evaluations of long episodes (health_gathering: 20 episodes of up to 525 steps) take
# at most a tenth of the run (charts/eval_seconds logs what each took).
EVAL_PAUSE = 9.0
# Near the target (the training mean or the last evaluation at least halfway from the random agent's score
# to it) evaluations come this many times as often: a target is seen soon after it is reached, while the
# pause rule above still bounds what they cost (basic: 20 short episodes, ~0.2 s, every 5 s).
NEAR_TARGET_SPEEDUP = 4.0
EXPLAINED_FRAMES = 200  # steps of an explained GIF during training (about 23 s of Doom at frame skip 4)


class Evaluator:
    """Plays evaluation episodes the way the scenario says (greedy or sampled) and keeps ``best.pt``.

    ``save(path, weights, evaluation)`` writes a checkpoint of the given weights; ``on_env_restart`` hears
    of an evaluation game that had to be replaced.
    """

    def __init__(self, cfg: TrainConfig, spec: EnvSpec, target: float, summaries: Summaries,
                 gif_dir: Path, run_name: str, save: Callable, on_env_restart: Callable):
        self.cfg, self.spec, self.target, self.summaries = cfg, spec, target, summaries
        self.gif_dir, self.run_name, self.save, self.on_env_restart = gif_dir, run_name, save, on_env_restart
        self.best_path = Path(cfg.models_dir) / spec.name / "best.pt"
        # Greedy actions can be degenerate where sampling is not (navigation): the scenario says which.
        self.mode = cfg.eval_mode or getattr(spec, "eval_mode", "greedy")
        self.generator = torch.Generator().manual_seed(cfg.seed)  # sampled evaluations repeat
        self.best = -math.inf
        self.reference: float | None = None  # the random agent's mean (else the first evaluation's)
        self.last_mean: float | None = None  # the last periodic evaluation's
        self.gifs: list[str] = []
        self.model: ActorCritic | None = None
        self._env_starts = 0
        self.env = self._make_env()
        self._last = {"eval": time.monotonic(), "gif": time.monotonic()}
        self._seconds = 0.0  # how long the last periodic evaluation took
        self._drawing = 0.0  # of which, drawing explained frames (--explain-gifs)
        self.last_result = "-"  # the last periodic mean, as the progress line shows it

    @property
    def spaces(self):
        """The evaluation game's observation and action spaces: they pick the model's encoder and head."""
        return self.env.observation_space, self.env.action_space

    def _make_env(self):
        seed = self.cfg.seed + 100_000 + 1_000_003 * self._env_starts  # a replacement gets a new seed
        self._env_starts += 1
        return make_env(self.spec, seed=seed, render_mode="rgb_array", engine_timeout=self.cfg.env_timeout)

    def _play(self, weights: dict | None, episodes: int, record: bool, what: str = "evaluating"):
        """Episodes with ``weights`` (None: the random agent); a crashed game is replaced and they are
        played again. A long stretch says ``what`` and how far it got (on a terminal)."""
        if weights is not None:
            self.model.load_state_dict(weights)
        explainer = self._explainer() if record and weights is not None else None
        for attempt in (1, 2):
            try:
                progress = EpisodeProgress(what, episodes, self.summaries.say, self.summaries.digits,
                                           enabled=on_terminal(self.summaries.out))
                played = evaluate(self.env, self.model if weights is not None else None, episodes,
                                  greedy=self.mode == "greedy", record_first=record, generator=self.generator,
                                  explainer=explainer, max_frames=EXPLAINED_FRAMES if explainer else 0,
                                  on_episode=progress)
                self._drawing = explainer.seconds if explainer else 0.0
                return played
            except EngineError as err:
                self.env.close()
                self.on_env_restart(EnvRestarted(-1, 0, str(err)))
                self.env = self._make_env()
                if attempt == 2:
                    raise

    def _explainer(self) -> Explainer | None:
        """With --explain-gifs, for models that take pictures and choose among actions (the GIF then
        holds the first EXPLAINED_FRAMES steps: each takes ~0.1 s to draw and ~50 kB)."""
        if not self.cfg.explain_gifs or self.model.num_actions == 0 or len(self.model.obs_shape) != 3:
            return None
        labels = action_labels(self.spec, self.env, self.model.num_actions)
        return Explainer(labels, getattr(self.spec, "crop", None), self.spec.reward_scale, colour_input(self.spec))

    def _gif(self, tag: str, frames: list, step: int) -> None:
        """The GIF file, and the same GIF in TensorBoard's Images tab beside the curves."""
        path = self.gif_dir / f"{self.run_name}-{tag}.gif"
        try:
            self.gifs.append(str(write_gif(path, frames, fps=self.env.steps_per_second)))
        except OSError as err:
            self.summaries.say(f"could not write {self.gif_dir} ({err.strerror or err}); no GIF this time; "
                               f"training goes on")
            return
        self.summaries.gif("eval/final_episode" if tag == "final" else "eval/episode", path, step)

    def evaluate(self, weights: dict, episodes: int, gif_tag: str | None = None, step: int = 0,
                 what: str = "evaluating") -> dict:
        """``episodes`` episodes of ``weights``; a GIF of the first if tagged (logged at ``step`` frames)."""
        results, frames = self._play(weights, episodes, record=gif_tag is not None, what=what)
        if gif_tag is not None and frames:
            self._gif(gif_tag, frames, step)
        return summarize(results)

    def random_baseline(self, episodes: int, step: int) -> None:
        """What "learned" is measured against: a uniformly random agent on the evaluation game."""
        self.env.action_space.seed(self.cfg.seed)
        baseline = summarize(self._play(None, episodes, record=False, what="random agent")[0])
        self.reference = baseline["mean"]
        self.summaries.scalar("eval/random_baseline", baseline["mean"], step)
        d = self.summaries.digits
        self.summaries.say(f"random agent: {baseline['mean']:.{d}f} ± {baseline['std']:.{d}f} over {episodes} "
                           f"episodes (mean length {baseline['length']:.0f} steps)")

    def near_target(self, training_mean: float | None) -> bool:
        """The recent training mean or the last evaluation is at least halfway from the reference (the
        random agent) to the target."""
        if self.reference is None or not math.isfinite(self.target) or self.target <= self.reference:
            return False
        halfway = (self.reference + self.target) / 2
        return any(x is not None and x >= halfway for x in (training_mean, self.last_mean))

    def due(self, now: float, training_mean: float | None = None) -> bool:
        """Time for a periodic evaluation: ``eval_interval`` after the last (a quarter of it near the
        target), and never sooner than EVAL_PAUSE times as long as the last one took."""
        interval = self.cfg.eval_interval / (NEAR_TARGET_SPEEDUP if self.near_target(training_mean) else 1.0)
        return now - self._last["eval"] >= max(interval, EVAL_PAUSE * self._seconds)

    def periodic(self, weights: dict, frames: int) -> dict | None:
        """One periodic evaluation of ``weights`` (a GIF with it when one is due); a mean at the target is
        confirmed over ``final_eval_episodes`` episodes of the same weights, so that a lucky 20 episodes do
        not end training. Returns the confirmed summary when the target is reached, else None."""
        cfg, started = self.cfg, time.monotonic()
        gif_due = cfg.gif_interval > 0 and started - self._last["gif"] >= cfg.gif_interval
        summary = self.evaluate(weights, cfg.eval_episodes, f"{frames:09d}" if gif_due else None, frames)
        self._seconds = time.monotonic() - started - self._drawing  # explained frames do not lengthen the pause
        self.summaries.scalar("charts/eval_seconds", self._seconds, frames)
        if gif_due:
            self._last["gif"] = started
        self.summaries.scalar("eval/mean_reward", summary["mean"], frames)
        self.summaries.scalar("eval/std_reward", summary["std"], frames)
        self.last_result = f"{summary['mean']:.{self.summaries.digits}f}"
        self.last_mean = summary["mean"]
        if self.reference is None:  # no random-agent baseline was played: the untrained agent stands in
            self.reference = summary["mean"]
        if summary["mean"] >= self.target:
            self.summaries.say(f"evaluation {summary['mean']:.{self.summaries.digits}f} reached the target {self.target:g}; confirming "
                               f"over {cfg.final_eval_episodes} episodes")
            results, gif_frames = self._play(weights, cfg.final_eval_episodes, record=True, what="confirming")
            summary = summarize(results)
            if summary["mean"] >= self.target:
                self._gif("final", gif_frames, frames)
            self.summaries.scalar("eval/confirm_mean_reward", summary["mean"], frames)
            self.last_result = f"{summary['mean']:.{self.summaries.digits}f}"
        self.keep_if_best(summary, weights)
        self._last["eval"] = time.monotonic()
        return summary if summary["mean"] >= self.target and summary["episodes"] >= cfg.final_eval_episodes else None

    def keep_if_best(self, summary: dict, weights: dict, even_if_equal: bool = False) -> None:
        """Save ``weights`` as best.pt when ``summary`` beats every evaluation so far (or there is none)."""
        better = summary["mean"] > self.best or (even_if_equal and summary["mean"] >= self.best)
        if better or not self.best_path.exists():
            self.best = max(self.best, summary["mean"])
            self.save(self.best_path, weights, self.record_of(summary))

    def record_of(self, summary: dict) -> dict:
        """What a checkpoint stores about the evaluation of its weights."""
        return {"mean": summary["mean"], "std": summary["std"], "episodes": summary["episodes"], "mode": self.mode}

    def close(self) -> None:
        self.env.close()
