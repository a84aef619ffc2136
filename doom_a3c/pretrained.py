"""Models shipped with the project (``models/pretrained/``): one small weights-only checkpoint per scenario
or game whose preset reached its target, so ``play.py`` has an agent to show before any training.

``scripts/ship_models.py`` makes them from ``models/<name>/best.pt``: it keeps the weights and what
rebuilds the model (no optimizer state), measures the score the way ``play.py`` does (100 episodes,
seed 0, the scenario's evaluation mode, so ``play.py --episodes 100`` prints the same mean), ships the
model where that score reaches the target (or, asked to, marked as short of it: a scenario no run has
reached still has an agent to show), and rewrites the folder's README table.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import torch

from doom_a3c.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from doom_a3c.progress import EpisodeProgress
from doom_a3c.resources import IN_CHECKOUT, PRETRAINED_DIR

MAX_BYTES = 3 * 1024**2  # Pong's network (the A3C paper's, 84x84 frames): its dense layer alone is 2.65 MB of float32
EPISODES = 100
SEED = 0  # play.py's default seed


def pretrained_path(name: str, directory: Path = PRETRAINED_DIR) -> Path:
    """Where the shipped model of scenario or game ``name`` lives (whether or not it exists)."""
    return directory / f"{name.replace('/', '-')}.pt"


def find_model(spec, models_dir: str | Path = "models") -> tuple[Path | None, str]:
    """The model ``play`` and ``Agent.load`` play for ``spec``, and what it is: ``<models_dir>/<name>/best.pt``
    where one was trained, else the shipped one; (None, "") where there is neither."""
    trained = Path(models_dir) / spec.name / "best.pt"
    if trained.is_file():
        return trained, "your best model"
    shipped = pretrained_path(spec.name)
    return (shipped, "the shipped model") if shipped.is_file() else (None, "")


def no_model(spec, models_dir: str | Path, train_with: str) -> str:
    """What ``find_model`` finding nothing means, and ``train_with`` (a command or a call) to make one."""
    return (f"no model for {spec.name}: {Path(models_dir) / spec.name / 'best.pt'} does not exist and none is "
            f"shipped (shipped: {', '.join(shipped_names()) or 'none'}); train one with {train_with}")


def shipped_names(directory: Path = PRETRAINED_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.pt"))


def play_score(spec, payload: dict, path: Path, episodes: int = EPISODES, seed: int = SEED) -> dict:
    """The mean raw reward of ``episodes`` episodes, played exactly as ``play.py --seed SEED`` plays them."""
    from doom_a3c.envs import make_env
    from doom_a3c.evaluation import play_episodes, summarize

    env = make_env(spec, seed=seed)
    try:
        model = model_from_checkpoint(payload, path, env.observation_space.shape, action_space=env.action_space)
        model.eval()
        greedy = spec.eval_mode == "greedy"
        from doom_a3c.summaries import reward_digits  # (tensorboard's writer: not on play's way)

        progress = EpisodeProgress(f"{spec.name}: scoring", episodes, digits=reward_digits(spec.target_reward))
        results, _ = play_episodes(env, model, episodes, greedy=greedy, seed=seed,  # Ctrl-C propagates
                                   on_episode=progress)
    finally:
        env.close()
    return {**summarize(results), "mode": "greedy" if greedy else "sampled", "seed": seed,
            "target": spec.target_reward}


def ship(spec, source: Path, directory: Path = PRETRAINED_DIR, episodes: int = EPISODES,
         below_target: bool = False) -> tuple[Path | None, str]:
    """Measure ``source`` (a best.pt) and, where it reaches ``spec``'s target (or ``below_target`` says to
    ship it anyway, marked as short of it), write its weights-only copy. Returns the shipped path (None where
    it was not shipped) and a line saying what happened."""
    target = spec.target_reward
    if not math.isfinite(target):
        return None, f"{spec.name}: no target to measure a model against: not shipped"
    payload = load_checkpoint(source)
    score = play_score(spec, payload, source, episodes)
    said = f"{spec.name}: {score['mean']:.2f} ± {score['std']:.2f} over {episodes} {score['mode']} episodes"
    if score["mean"] < target and not below_target:
        return None, f"{said}, short of the target {target:g}: not shipped (--below-target ships it anyway)"
    said += f", short of the target {target:g}" if score["mean"] < target else f" (target {target:g})"
    model = model_from_checkpoint(payload, source)
    path = pretrained_path(spec.name, directory)
    # Written beside, checked, then renamed over the shipped one: an oversized model replaces nothing.
    candidate = path.with_name(f".{path.name}.candidate")
    save_checkpoint(candidate, model=model, scenario=payload["scenario"], config=payload["config"],
                    counters=payload["counters"], evaluation=score)
    size = candidate.stat().st_size
    if size > MAX_BYTES:
        candidate.unlink()
        return None, f"{said}, but {size / 2**20:.1f} MB is over the {MAX_BYTES / 2**20:.0f} MB a shipped model may take"
    candidate.replace(path)
    shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
    return path, f"{said}: shipped as {shown} ({size / 2**20:.2f} MB)"


def short_of(evaluation: dict) -> str:
    """" (not reached)" for a model shipped short of its target, else ""."""
    return " (not reached)" if evaluation.get("mean", math.inf) < evaluation.get("target", -math.inf) else ""


def table(directory: Path = PRETRAINED_DIR) -> str:
    """The README of ``models/pretrained/``: what each shipped model is and the score it was measured at."""
    lines = ["# Shipped models", "",
             "Weights-only checkpoints (no optimizer state) that `python scripts/play.py --scenario NAME` plays when",
             "`models/NAME/best.pt` does not exist. Made by `python scripts/ship_models.py` from `best.pt` files;",
             "the score is the mean raw reward over the episodes shown, played as `play.py --episodes N` plays",
             f"them (seed {SEED}, the scenario's evaluation mode). A model is shipped at its target; one short of",
             "it (`ship_models.py --below-target`, where no run has reached it) is marked so in the target column.",
             "",
             "| scenario | input | network | frames trained | score | target | size |", "|---|---|---|---:|---|---:|---:|"]
    for path in sorted(directory.glob("*.pt")):
        payload = torch.load(path, map_location="cpu", weights_only=True)
        kwargs, score = payload["model_kwargs"], payload["evaluation"]
        shape = "x".join(str(x) for x in kwargs["obs_shape"])
        encoder = "conv" if len(kwargs["obs_shape"]) == 3 else "MLP"
        core = f"{encoder} + LSTM {kwargs['hidden_size']}" if kwargs.get("lstm", True) else \
            f"{encoder} {kwargs['hidden_size']}"
        params = sum(v.numel() for v in payload["model"].values())
        target = score.get("target", float("nan"))
        lines.append(f"| {path.stem} | {shape} | {core}, {params:,} parameters | "
                     f"{payload['counters'].get('frames', 0) / 1e6:.2f}M | {score['mean']:.2f} ± {score['std']:.2f} "
                     f"({score['mode']}, {score['episodes']} episodes) | {target:g}{short_of(score)} | "
                     f"{path.stat().st_size / 2**20:.2f} MB |")
    return "\n".join(lines) + "\n"


USAGE = """Make the shipped models (models/pretrained/) from trained best.pt files:

    %(prog)s                       # every scenario or game with a models/<name>/best.pt
    %(prog)s basic take_cover --models-dir runs/results/models

Each best.pt is played for 100 episodes exactly as `play --episodes 100` plays them; a model whose mean
reaches its scenario's target is written as a weights-only checkpoint (under 3 MB) to
models/pretrained/<name>.pt (with --below-target, one short of it too, marked so), and
models/pretrained/README.md lists what is shipped and at what score.
"""


def main(argv: list[str] | None = None, prog: str = "ship_models.py") -> int:
    """``ship_models.py`` (``doom-a3c ship``): ship the trained models that reach their targets."""
    from doom_a3c.envs import EngineError, ScenarioError, load_env_spec

    parser = argparse.ArgumentParser(prog=prog, description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="scenarios or games (default: every one with a best.pt)")
    parser.add_argument("--models-dir", default="models", help="where <name>/best.pt are read from")
    # A checkout ships into its own models/pretrained/; an installed copy into ./models/pretrained, never into
    # its installed package.
    parser.add_argument("--out-dir", default=str(PRETRAINED_DIR if IN_CHECKOUT else Path("models", "pretrained")),
                        help="where the shipped models and their README go [default: models/pretrained]")
    parser.add_argument("--episodes", type=int, default=EPISODES, help="episodes the score is measured over")
    parser.add_argument("--below-target", action="store_true",
                        help="ship a model short of its target too, marked as such (for a scenario no run reached)")
    args = parser.parse_args(argv)
    models = Path(args.models_dir)
    names = args.names or sorted(p.parent.name for p in models.glob("*/best.pt") if p.parent.name != "pretrained")
    if not names:
        print(f"{prog}: error: no {models}/<name>/best.pt to ship; train one first", file=sys.stderr)
        return 2
    out = Path(args.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        print(f"{prog}: error: --out-dir {out}: cannot write there ({err.strerror or err})", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    failed = False
    try:
        for name in names:
            try:
                spec = load_env_spec(name)
                _, said = ship(spec, models / spec.name / "best.pt", Path(args.out_dir), args.episodes,
                               below_target=args.below_target)
            except (ScenarioError, CheckpointError, EngineError) as err:
                print(f"{prog}: error: {name}: {err}", file=sys.stderr)
                failed = True
                continue
            print(said, flush=True)
    finally:  # the table always describes what is in the folder, whatever stopped the loop
        (out / "README.md").write_text(table(out))
        print(f"wrote {out / 'README.md'}")
    return 2 if failed else 0
