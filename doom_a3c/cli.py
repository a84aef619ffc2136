"""Command-line entry points behind scripts/train_doom.py and scripts/play.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2  # bad input: unknown scenario, bad number, bad checkpoint, no display
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def train_main(argv: list[str] | None = None) -> int:
    """``train_doom.py``: train A3C on a ViZDoom scenario until it reaches the target or a limit."""
    from doom_a3c.config import add_config_arguments, config_from_args
    from doom_a3c.envs import ScenarioError, load_scenario, scenario_table

    parser = argparse.ArgumentParser(
        prog="train_doom.py",
        description="Train an A3C agent (conv -> LSTM -> policy/value) on a ViZDoom scenario from pixels. "
                    "Defaults come from the scenario file's [train] table, then these options.",
    )
    parser.add_argument("--list-scenarios", action="store_true", help="print the scenario table and exit")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.list_scenarios:
        print(scenario_table())
        return 0
    try:
        spec = load_scenario(args.scenario or "basic")
        cfg = config_from_args(args, spec.train)
    except (ScenarioError, ValueError) as err:
        return _fail(parser.prog, str(err))

    from doom_a3c.checkpoint import CheckpointError
    from doom_a3c.trainer import Trainer, WorkerError

    try:
        result = Trainer(cfg, spec).train()
    except CheckpointError as err:
        return _fail(parser.prog, str(err))
    except WorkerError as err:
        print(f"{parser.prog}: {err}", file=sys.stderr)
        return 1
    return EXIT_INTERRUPTED if result.stop_reason == "interrupted" else 0


def play_main(argv: list[str] | None = None) -> int:
    """``play.py``: load a checkpoint and watch the agent play, print rewards, optionally record a GIF."""
    parser = argparse.ArgumentParser(
        prog="play.py",
        description="Play a trained agent: greedy by default; --render shows the game window, --gif records.")
    parser.add_argument("--scenario", default=None,
                        help="scenario name or .toml path (default: the checkpoint's, or basic)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file (default: models/<scenario>/best.pt)")
    parser.add_argument("--models-dir", default="models", help="where default checkpoints are looked for")
    parser.add_argument("--episodes", type=int, default=5, help="number of episodes to play")
    parser.add_argument("--render", action="store_true", help="show ViZDoom's window at real-time speed")
    parser.add_argument("--gif", default=None, metavar="PATH", help="record the episodes into this GIF")
    parser.add_argument("--sample", action="store_true", help="sample actions instead of taking the most likely")
    parser.add_argument("--seed", type=int, default=0, help="game seed")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        return _fail(parser.prog, f"--episodes must be at least 1, got {args.episodes}")

    from doom_a3c.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
    from doom_a3c.envs import DisplayError, ScenarioError, has_display, known_scenarios, load_scenario, make_env

    if args.render and not has_display():
        return _fail(parser.prog, "--render needs a display and none was found; run it under a virtual one "
                                  "(xvfb-run -a python scripts/play.py --render) or record with --gif PATH")
    try:
        if args.checkpoint is None:
            scenario_name = args.scenario or "basic"
            spec = load_scenario(scenario_name)
            path = Path(args.models_dir) / spec.name / "best.pt"
            payload = load_checkpoint(path)
        else:
            path = Path(args.checkpoint)
            payload = load_checkpoint(path)
            saved = payload["scenario"]
            if args.scenario:
                spec = load_scenario(args.scenario)
            elif saved.get("name") in known_scenarios():
                spec = load_scenario(saved["name"])
            elif saved.get("source") and Path(saved["source"]).is_file():
                spec = load_scenario(saved["source"])
            else:
                return _fail(parser.prog, f"{path}: trained on scenario '{saved.get('name')}', which is not "
                                          "known here; pass --scenario NAME_OR_PATH")
        model = model_from_checkpoint(payload, path, spec.obs_shape, spec.num_actions)
    except (CheckpointError, ScenarioError) as err:
        return _fail(parser.prog, str(err))

    from doom_a3c.evaluation import run_episode, summarize
    from doom_a3c.recording import write_gif

    import torch

    torch.set_num_threads(1)
    model.eval()
    try:
        env = make_env(spec, seed=args.seed, render_mode="human" if args.render else None)
    except DisplayError as err:
        return _fail(parser.prog, f"{err}; run it under xvfb-run -a, or record with --gif PATH")
    generator = torch.Generator().manual_seed(args.seed)
    trained = payload.get("evaluation", {})
    note = f", evaluated at {trained['mean']:.1f}" if "mean" in trained else ""
    print(f"playing {spec.name} with {path} ({payload['counters'].get('frames', 0):,} frames trained{note}), "
          f"{'sampled' if args.sample else 'greedy'} actions")
    results, frames = [], []
    try:
        for episode in range(1, args.episodes + 1):
            result = run_episode(env, model, greedy=not args.sample, record=args.gif is not None,
                                 generator=generator)
            frames.extend(result.frames)
            results.append(result)
            print(f"episode {episode}: reward {result.reward:.1f} in {result.length} steps")
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        env.close()
    if not results:
        return EXIT_INTERRUPTED
    summary = summarize(results)
    print(f"mean reward over {summary['episodes']} episodes: {summary['mean']:.1f} ± {summary['std']:.1f}")
    if args.gif:
        print(f"GIF written to {write_gif(args.gif, frames, fps=35 / spec.frame_skip)}")
    return 0
