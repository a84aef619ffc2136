"""One typed dataclass of training settings, parsed once at the entry point and saved with every run."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class TrainConfig:
    """Training settings. Every field is a command-line option (``rollout_len`` -> ``--rollout-len``)."""

    scenario: str = _help("environment: a ViZDoom scenario (see --list-scenarios), a gymnasium id such as "
                          "CartPole-v1 or ALE/Pong-v5, or the path of a .toml file", default="basic")
    workers: int = _help(f"number of worker processes [default: the number of CPU cores, {os.cpu_count() or 1} here]",
                         default_factory=lambda: os.cpu_count() or 1)
    envs_per_worker: int = _help("games each worker steps, acting on them with one batched forward pass",
                                 default=4)
    rollout_len: int = _help("environment steps per rollout before a bootstrapped update; 0: whole episodes "
                             "(each game plays one episode to its end per update)", default=30)
    advantage: str = _help("what scales the policy gradient: gae (learned critic, A2C/A3C), returns (vanilla "
                           "policy gradient on discounted returns), returns-mean (the same minus their mean); "
                           "the last two need --rollout-len 0", default="gae")
    gamma: float = _help("discount factor", default=0.99)
    gae_lambda: float = _help("GAE lambda (1.0: plain n-step returns)", default=1.0)
    lr: float = _help("Adam learning rate", default=3e-4)
    lr_decay: bool = _help("decay the learning rate linearly to 0 at --max-frames (needs --max-frames)", default=False)
    adam_eps: float = _help("Adam epsilon", default=1e-5)
    entropy_beta: float = _help("entropy bonus coefficient", default=0.01)
    entropy_beta_end: float = _help("anneal the entropy bonus linearly from --entropy-beta to this at --max-frames "
                                    "(needs --max-frames); default: constant", default=float("nan"))
    value_coef: float = _help("value loss coefficient", default=0.5)
    max_grad_norm: float = _help("gradient-norm clipping threshold", default=40.0)
    normalize_returns: bool = _help("divide the rewards the workers learn from by a running standard deviation "
                                    "of the discounted return (each worker its own estimate; reported rewards "
                                    "stay raw)", default=False)
    normalize_advantages: bool = _help("scale each update's advantages to mean 0 and standard deviation 1 (PPO's "
                                       "per-batch normalisation): the policy gradient keeps one size against the "
                                       "entropy bonus however rare and small the rewards are", default=False)
    pixel_mean: float = _help("the conv encoder's input is (pixels - this) / --pixel-std", default=0.0)
    pixel_std: float = _help("see --pixel-mean (0 and 255: pixels / 255; a game's own pixel mean and standard "
                             "deviation centre and scale its frames)", default=255.0)
    init: str = _help("the conv encoder's initialisation: torch (PyTorch's default) or xavier (Xavier-uniform "
                      "weights and zero biases, as ikostrikov's pytorch-a3c)", default="torch")
    hidden_size: int = _help("width of the encoder's output and of the LSTM", default=256)
    lstm: bool = _help("an LSTM core between encoder and heads (--no-lstm: a feed-forward policy)", default=True)
    acting: str = _help("what the workers act with: ort (the network's forward pass in ONNX Runtime, on the same "
                        "weights; eager PyTorch where onnxruntime is missing) or torch (eager PyTorch)",
                        default="ort")
    cpu_affinity: bool = _help("pin each worker and its games to a CPU core of its own, while free cores last "
                               "(hand-offs between a worker and its games stay on one core)", default=True)
    seed: int = _help("random seed; worker i uses seed + i", default=1)
    max_frames: int = _help("stop after this many frames (env steps x frame skip); 0: no limit", default=0)
    max_minutes: float = _help("stop after this many minutes of training; 0: no limit", default=0.0)
    target_reward: float = _help("stop once an evaluation reaches this mean raw reward "
                                 "(default: the scenario's target)", default=float("nan"))
    eval_interval: float = _help("seconds between evaluations (they pick best.pt and test the target); at least "
                                 "9 times as long as the last one took, so they take at most a tenth of the run",
                                 default=20.0)
    eval_episodes: int = _help("episodes per periodic evaluation", default=20)
    eval_mode: str = _help("how evaluations pick actions: greedy (the most likely) or sampled (from the policy); "
                           "default: the scenario's", default="")
    baseline_episodes: int = _help("episodes of a uniformly random agent played before training; their mean is "
                                   "printed and logged as eval/random_baseline (0: skip)", default=10)
    final_eval_episodes: int = _help("episodes of the final evaluation", default=100)
    gif_interval: float = _help("seconds between GIFs of a greedy episode (one more is written at the end); "
                                "0: only the final one", default=120.0)
    explain_gifs: bool = _help("draw the GIFs as play.py --explain does: the agent's input, saliency maps, action "
                               "probabilities, value and reward so far beside the game", default=False)
    checkpoint_interval: float = _help("seconds between checkpoints of latest.pt", default=60.0)
    log_interval: float = _help("seconds between progress lines", default=10.0)
    env_timeout: float = _help("seconds a game's engine may take to answer one step before it is killed and "
                               "replaced by a fresh game (a step takes about a millisecond; a starved machine "
                               "has stalled for 10-20 s)",
                               default=60.0)  # envs.engine.ENGINE_TIMEOUT, not imported: that would load the engines
    worker_timeout: float = _help("seconds a worker may go without finishing a rollout before the supervisor "
                                  "kills and restarts it (a new worker has at least 10 minutes for its first: "
                                  "starting is slow on a busy machine)", default=120.0)
    max_worker_restarts: int = _help("worker deaths allowed in any 10 minutes; one more stops training with a "
                                     "checkpoint and exit code 1", default=5)
    run_name: str = _help("name of this run under runs/<scenario>/ (default: date and time; with --resume, the "
                          "resumed run's)", default="")
    runs_dir: str = _help("TensorBoard root directory", default="runs")
    models_dir: str = _help("checkpoint root directory (checkpoints go to <models-dir>/<scenario>/)",
                            default="models")
    frames_dir: str = _help("GIF root directory (GIFs go to <frames-dir>/<scenario>/)", default="frames")
    resume: bool = _help("continue from <models-dir>/<scenario>/latest.pt", default=False)
    ray: str = _help("run the workers as Ray actors around a parameter server: 'local' (or --ray alone) starts a "
                     "private Ray instance on this machine, 'auto' or HOST:PORT joins a running cluster (`ray "
                     "start --head` on one machine, `ray start --address HEAD:6379` on the others); --workers "
                     "then counts workers across the cluster. Without it: processes of this machine, no Ray",
                     default="")

    def validate(self) -> None:
        """Raise ValueError with a readable message for settings that cannot work."""
        positive_ints = ["workers", "envs_per_worker", "hidden_size", "eval_episodes", "final_eval_episodes"]
        for name in positive_ints:
            if getattr(self, name) < 1:
                raise ValueError(f"--{_flag(name)} must be at least 1, got {getattr(self, name)}")
        for name in ["rollout_len", "baseline_episodes", "max_frames", "max_minutes", "gif_interval",
                     "max_worker_restarts"]:
            if getattr(self, name) < 0:
                raise ValueError(f"--{_flag(name)} must be 0 or more, got {getattr(self, name)}")
        for name in ["lr", "adam_eps", "max_grad_norm", "eval_interval", "checkpoint_interval", "log_interval",
                     "env_timeout", "worker_timeout", "pixel_std"]:
            if not getattr(self, name) > 0:
                raise ValueError(f"--{_flag(name)} must be positive, got {getattr(self, name)}")
        for name in ["gamma", "gae_lambda"]:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{_flag(name)} must be between 0 and 1, got {getattr(self, name)}")
        for name in ["entropy_beta", "value_coef"]:
            if getattr(self, name) < 0:
                raise ValueError(f"--{_flag(name)} must be 0 or more, got {getattr(self, name)}")

        if self.ray and self.ray not in ("local", "auto") and not _is_address(self.ray):
            raise ValueError(f"--ray takes local, auto or HOST:PORT, got '{self.ray}'")
        from doom_a3c.model import INITS

        if self.init not in INITS:
            raise ValueError(f"--init must be one of {', '.join(INITS)}, got '{self.init}'")
        if self.acting not in ("ort", "torch"):
            raise ValueError(f"--acting must be ort or torch, got '{self.acting}'")
        if self.eval_mode not in ("", "greedy", "sampled"):
            raise ValueError(f"--eval-mode must be greedy or sampled, got '{self.eval_mode}'")
        if self.lr_decay and not self.max_frames:
            raise ValueError("--lr-decay decays the learning rate to 0 at --max-frames: give --max-frames N")
        if not math.isnan(self.entropy_beta_end):
            if self.entropy_beta_end < 0:
                raise ValueError(f"--entropy-beta-end must be 0 or more, got {self.entropy_beta_end}")
            if not self.max_frames:
                raise ValueError("--entropy-beta-end anneals the entropy bonus until --max-frames: give --max-frames N")
        from doom_a3c.returns import ADVANTAGES

        if self.advantage not in ADVANTAGES:
            raise ValueError(f"--advantage must be one of {', '.join(ADVANTAGES)}, got '{self.advantage}'")
        if self.advantage != "gae" and self.rollout_len != 0:
            raise ValueError(f"--advantage {self.advantage} has no critic to bootstrap a cut-off rollout from: "
                             "use --rollout-len 0 (whole episodes)")

    def encoder_options(self) -> dict[str, Any]:
        """What the model's conv encoder takes from these settings (``ActorCritic``'s keywords)."""
        return {"pixel_norm": (self.pixel_mean, self.pixel_std), "init": self.init}

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for checkpoints and TensorBoard."""
        return dataclasses.asdict(self)


def _is_address(text: str) -> bool:
    host, _, port = text.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def _flag(name: str) -> str:
    return name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, aliases: dict[str, list[str]] | None = None) -> None:
    """Add one option per TrainConfig field; defaults stay None so scenario defaults can fill them.

    ``aliases`` gives extra spellings, e.g. ``{"scenario": ["--env"]}``; the first one is shown first.
    """
    for f in dataclasses.fields(TrainConfig):
        flags = [*(aliases or {}).get(f.name, []), f"--{_flag(f.name)}"]
        help_text = f.metadata.get("help", "")
        if f.type in ("bool", bool):
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=f"{help_text} [default: {f.default}]")
            continue
        kind = {"int": int, "float": float, "str": str}[str(f.type)]
        if f.name == "ray":  # an optional value: --ray alone means a private instance on this machine
            parser.add_argument(*flags, dest=f.name, nargs="?", const="local", default=None, metavar="ADDRESS",
                                help=help_text)
            continue
        if f.default is not dataclasses.MISSING:  # computed defaults describe themselves in the help
            help_text = f"{help_text} [default: {f.default}]"
        parser.add_argument(*flags, dest=f.name, type=kind, default=None, metavar=f.name.upper(), help=help_text)


def apply_settings(cfg: TrainConfig, settings: dict[str, Any], where: str) -> None:
    """Set ``settings`` (option name -> value) on ``cfg``, each value checked against its option's type
    (``where`` names their source in the errors): a scenario's ``[train]`` table and the Python API's
    keywords go through here, so that both accept and refuse the same things."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in settings.items():
        if key not in fields:
            raise ValueError(f"{where}: unknown setting '{key}'")
        default = getattr(cfg, key)
        if key == "ray" and value is True:
            value = "local"  # ray=True: a private Ray instance, as --ray alone
        wrong = ""
        if isinstance(default, bool):
            wrong = "" if isinstance(value, bool) else "true or false"
        elif isinstance(default, int):
            whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            wrong = "" if whole and not isinstance(value, bool) else "a whole number"
            value = int(value) if not wrong else value
        elif isinstance(default, float):
            wrong = "" if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
            value = float(value) if not wrong else value
        elif isinstance(default, str):
            wrong = "" if isinstance(value, str) else "a string"
        if wrong:
            raise ValueError(f"{where}: {key} takes {wrong}, got {value!r}")
        setattr(cfg, key, value)


def config_from_args(args: argparse.Namespace, scenario_overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the scenario's [train] table, then the command line: the last one given wins."""
    cfg = TrainConfig()
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    apply_settings(cfg, scenario_overrides or {}, "scenario [train] table")
    for key in names:
        value = getattr(args, key, None)
        if value is not None:
            setattr(cfg, key, value)
    cfg.validate()
    return cfg
