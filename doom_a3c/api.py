"""The Python API: train an agent, load one, let it act and play.

    import doom_a3c

    result = doom_a3c.train("basic", max_frames=300_000)   # basic's preset, then these options
    print(result.stop_reason, result.final_eval["mean"])

    agent = doom_a3c.Agent.load("basic")      # models/basic/best.pt if you trained one, else the shipped model
    print(agent.play(episodes=5)["mean"])

    env = gymnasium.make("doom_a3c/basic-v0")   # every Doom scenario file is a gymnasium id too
    obs, _ = env.reset(seed=0)
    action, state = agent.act(obs)              # one step; pass ``state`` back in with the next observation

``train`` is ``train.py`` without the command line: the same preset, the same validation, the same run
(TensorBoard events, GIFs, checkpoints, the progress line on stdout), and any training option as a keyword
(``--max-frames`` is ``max_frames``). Bad settings raise ``ValueError`` (``ScenarioError`` for an unknown
scenario) before anything starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from doom_a3c.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from doom_a3c.config import TrainConfig, apply_settings
from doom_a3c.envs import load_env_spec, load_scenario, make_env, spec_of_checkpoint
from doom_a3c.model import ActorCritic, State
from doom_a3c.pretrained import find_model, no_model
from doom_a3c.trainer import TrainResult


def settings(scenario: str = "basic", **options: Any) -> TrainConfig:
    """The settings ``train`` would run with: the defaults, then ``scenario``'s ``[train]`` preset, then
    ``options`` (TrainConfig's fields, as keywords), validated."""
    spec = load_env_spec(scenario)
    return _config(spec, options)


def _config(spec, options: dict[str, Any]) -> TrainConfig:
    cfg = TrainConfig()
    apply_settings(cfg, spec.train, "scenario [train] table")
    apply_settings(cfg, options, "doom_a3c.train")
    cfg.scenario = spec.name
    cfg.validate()
    return cfg


def train(scenario: str = "basic", **options: Any) -> TrainResult:
    """Train on ``scenario`` (a ViZDoom scenario name, a gymnasium id such as ``"ALE/Pong-v5"`` or
    ``"CartPole-v1"``, or a scenario file's path) with its preset and ``options``; blocks until a target,
    a budget or Ctrl-C stops it, and returns how it ended (``TrainResult``: stop_reason, frames, seconds,
    final_eval, run_dir, checkpoint_dir, gifs)."""
    import multiprocessing

    from doom_a3c.trainer import Trainer

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # A worker process starting runs the calling script's top level again: without a __main__ guard that
        # would train again in every worker. Said in one line instead of multiprocessing's page of text.
        raise RuntimeError("doom_a3c.train() starts worker processes, which import your script again: call it "
                           "under `if __name__ == \"__main__\":`")
    spec = load_env_spec(scenario)
    return Trainer(_config(spec, options), spec).train()


class Agent:
    """A trained model and the scenario or game it plays.

    ``Agent.load(name_or_path)`` finds it; ``act(obs, state)`` picks one action; ``play(episodes)`` plays
    whole episodes in a game of its own. Actions are greedy where the scenario's evaluations are (most
    are), sampled where it says so; ``greedy=`` overrides either.
    """

    def __init__(self, model: ActorCritic, spec, path: Path, payload: dict | None = None,
                 greedy: bool | None = None, seed: int = 0):
        self.model = model.eval()
        self.spec = spec
        self.path = Path(path)
        self.trained = dict((payload or {}).get("evaluation", {}))  # the score it was measured at, if any
        self.greedy = getattr(spec, "eval_mode", "greedy") == "greedy" if greedy is None else bool(greedy)
        self._generator = torch.Generator().manual_seed(seed)

    @classmethod
    def load(cls, name_or_path: str | Path = "basic", models_dir: str | Path = "models",
             greedy: bool | None = None, seed: int = 0) -> Agent:
        """A scenario or game name finds its model as ``play.py`` does (``<models_dir>/<name>/best.pt``,
        else the shipped one); a path to a ``.pt`` file loads that checkpoint, for the scenario it was
        trained on. Raises ``FileNotFoundError`` where a scenario has no model, ``CheckpointError`` for a
        ``.pt`` path that is missing or is not a model of this project, ``ScenarioError`` for an unknown name."""
        candidate = Path(name_or_path)
        if candidate.suffix == ".pt":
            path, payload = candidate, load_checkpoint(candidate)
            spec = spec_of_checkpoint(payload["scenario"])
        else:
            spec = load_env_spec(str(name_or_path))
            path, _ = find_model(spec, models_dir)
            if path is None:
                raise FileNotFoundError(no_model(spec, models_dir, f"doom_a3c.train({spec.name!r})"))
            payload = load_checkpoint(path)
        # Checked against the scenario as it is here: its frames' shape and its actions (a model trained
        # before its scenario file changed would otherwise pick wrong actions).
        model = model_from_checkpoint(payload, path, getattr(spec, "obs_shape", None),
                                      getattr(spec, "num_actions", None))
        return cls(model, spec, path, payload, greedy=greedy, seed=seed)

    @property
    def name(self) -> str:
        return self.spec.name

    def initial_state(self) -> State:
        """The recurrent state an episode starts from (empty for a model without an LSTM)."""
        return self.model.initial_state(1)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, state: State | None = None) -> tuple[Any, State]:
        """One action for one observation, as the environment gave it, and the state to pass back in with
        the next one. ``state=None`` starts an episode. The action is what ``env.step`` takes: an int for
        discrete actions, a float array for continuous ones."""
        starts = torch.ones(1) if state is None else torch.zeros(1)
        state = self.initial_state() if state is None else state
        params, _, state = self.model(torch.as_tensor(np.asarray(obs)).unsqueeze(0), state, starts)
        policy = self.model.policy
        choice = policy.greedy(params) if self.greedy else policy.sample(params, generator=self._generator)
        return policy.to_env(choice[0].numpy()), state

    def make_env(self, seed: int | None = None, render_mode: str | None = None):
        """A game of this agent's scenario (``render_mode="human"`` for a window, ``"rgb_array"`` for frames)."""
        return make_env(self.spec, seed=seed, render_mode=render_mode)

    def play(self, episodes: int = 1, seed: int = 0, render: bool = False, gif: str | Path | None = None) -> dict:
        """Play ``episodes`` whole episodes, as ``play.py --episodes N --seed SEED`` does (the same seed plays
        the same episodes); ``render`` shows the game window, ``gif`` records them into that file. Returns
        the mean, std, min, max and mean length of the rewards, and the ``rewards`` themselves."""
        from doom_a3c.evaluation import play_episodes, summarize
        from doom_a3c.recording import write_gif

        if episodes < 1:
            raise ValueError(f"episodes must be at least 1, got {episodes}")
        env = self.make_env(seed=seed, render_mode="human" if render else "rgb_array" if gif else None)
        try:
            results, stopped = play_episodes(env, self.model, episodes, greedy=self.greedy, seed=seed,
                                             record=gif is not None)
            fps = env.steps_per_second
        finally:
            env.close()
        summary = {**summarize(results), "rewards": [r.reward for r in results]}
        if gif is not None:
            summary["gif"] = str(write_gif(gif, [f for r in results for f in r.frames], fps=fps))
        return summary

    def __repr__(self) -> str:
        score = f", trained to {self.trained['mean']:.1f}" if "mean" in self.trained else ""
        return f"Agent({self.name!r} from {self.path}{score}, {'greedy' if self.greedy else 'sampled'})"


def make_scenario_env(scenario: str, render_mode: str | None = None, seed: int | None = None, **_: Any):
    """gymnasium's entry point for ``doom_a3c/<scenario>-v0``: the scenario's game as training and play see it
    (preprocessed frames, its actions, its reward)."""
    return make_env(load_scenario(scenario), seed=seed, render_mode=render_mode)


__all__ = ["Agent", "TrainConfig", "TrainResult", "make_scenario_env", "settings", "train"]
