"""Command-line entry points behind scripts/train_doom.py, scripts/train.py and scripts/play.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2  # bad input: unknown scenario, bad number, bad checkpoint, no display
EXIT_FAILED = 1  # training stopped because its workers kept dying (a checkpoint is saved)
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def train_main(argv: list[str] | None = None) -> int:
    """``train_doom.py``: train A3C on a ViZDoom scenario until it reaches the target or a limit."""
    from doom_a3c.config import add_config_arguments

    parser = argparse.ArgumentParser(
        prog="train_doom.py",
        description="Train an A3C agent (conv -> LSTM -> policy/value) on a ViZDoom scenario from pixels. "
                    "Defaults come from the scenario file's [train] table, then these options.",
    )
    parser.add_argument("--list-scenarios", action="store_true", help="print the scenario table and exit")
    add_config_arguments(parser)
    args = parser.parse_args(argv)
    if args.list_scenarios:
        from doom_a3c.envs import scenario_table

        print(scenario_table())
        return 0
    from doom_a3c.envs import ScenarioError, load_scenario

    try:
        spec = load_scenario(args.scenario or "basic")
    except ScenarioError as err:
        return _fail(parser.prog, str(err))
    return _train(parser, args, spec)


def train_any_main(argv: list[str] | None = None) -> int:
    """``train.py``: the same trainer for any environment: ViZDoom, Atari, classic control, Box2D."""
    from doom_a3c.config import add_config_arguments

    parser = argparse.ArgumentParser(
        prog="train.py",
        description="Train an actor-critic agent on any supported game: a ViZDoom scenario, an Atari game "
                    "(ALE/Pong-v5), or a gymnasium environment (CartPole-v1, LunarLander-v3, Pendulum-v1). "
                    "The model picks its encoder from the observations and its head from the actions. "
                    "Defaults come from the environment's file in scenarios/, then these options.",
    )
    parser.add_argument("--list-envs", action="store_true", help="print the environments with tuned defaults")
    add_config_arguments(parser, aliases={"scenario": ["--env"]})
    args = parser.parse_args(argv)
    if args.list_envs:
        from doom_a3c.envs import env_table

        print(env_table())
        return 0
    if not args.scenario:
        return _fail(parser.prog, "give the environment: --env ID (for example CartPole-v1; --list-envs lists them)")
    from doom_a3c.envs import ScenarioError, load_env_spec

    try:
        spec = load_env_spec(args.scenario)
    except ScenarioError as err:
        return _fail(parser.prog, str(err))
    return _train(parser, args, spec)


def _train(parser: argparse.ArgumentParser, args: argparse.Namespace, spec) -> int:
    """Settings from the spec's [train] table and the command line, then the run; returns the exit code."""
    from doom_a3c.config import config_from_args

    try:
        cfg = config_from_args(args, spec.train)
        cfg.scenario = spec.name
    except ValueError as err:
        return _fail(parser.prog, str(err))

    from doom_a3c.backends import ClusterError
    from doom_a3c.checkpoint import CheckpointError
    from doom_a3c.envs import ScenarioError
    from doom_a3c.trainer import OutputError, Trainer

    try:
        result = Trainer(cfg, spec).train()
    except (CheckpointError, ScenarioError, OutputError, ClusterError) as err:
        return _fail(parser.prog, str(err))
    return {"interrupted": EXIT_INTERRUPTED, "workers_failed": EXIT_FAILED}.get(result.stop_reason, 0)


def _spec_of_checkpoint(saved: dict):
    """The environment spec a checkpoint was trained on, if it can be found here."""
    from doom_a3c.envs import ScenarioError, known_scenarios, load_env_spec, load_scenario

    if saved.get("env_id"):
        return load_env_spec(saved["env_id"])
    if saved.get("name") in known_scenarios():
        return load_scenario(saved["name"])
    if saved.get("source") and Path(saved["source"]).is_file():
        return load_scenario(saved["source"])
    raise ScenarioError(f"trained on '{saved.get('name')}', which is not known here; pass --env NAME_OR_PATH")


def play_main(argv: list[str] | None = None) -> int:
    """``play.py``: load a checkpoint and watch the agent play, print rewards, optionally record a GIF."""
    parser = argparse.ArgumentParser(
        prog="play.py",
        description="Play a trained agent on any environment, picking actions as the environment's "
                    "evaluations do (greedy unless its file says sampled); --render shows the game window, "
                    "--gif records, --random plays the random-agent baseline.")
    parser.add_argument("--env", "--scenario", dest="env", default=None,
                        help="ViZDoom scenario, gymnasium id or .toml path (default: the checkpoint's, or basic)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file (default: models/<env>/best.pt)")
    parser.add_argument("--models-dir", default="models", help="where default checkpoints are looked for")
    parser.add_argument("--episodes", type=int, default=5, help="number of episodes to play")
    parser.add_argument("--render", action="store_true", help="show the game's window at real-time speed")
    parser.add_argument("--gif", default=None, metavar="PATH", help="record the episodes into this GIF")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--sample", action="store_true", help="sample actions from the policy")
    mode.add_argument("--greedy", action="store_true", help="take the most likely action")
    parser.add_argument("--random", action="store_true",
                        help="play uniformly random actions, no checkpoint: the baseline a trained agent beats")
    parser.add_argument("--seed", type=int, default=0, help="game seed")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        return _fail(parser.prog, f"--episodes must be at least 1, got {args.episodes}")

    from doom_a3c.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
    from doom_a3c.envs import DisplayError, ScenarioError, has_display, load_env_spec, make_env

    if args.render and not has_display():
        return _fail(parser.prog, "--render needs a display and none was found; run it under a virtual one "
                                  "(xvfb-run -a python scripts/play.py --render) or record with --gif PATH")
    payload, path = None, None
    try:
        if args.random:
            spec = load_env_spec(args.env or "basic")
        elif args.checkpoint is None:
            spec = load_env_spec(args.env or "basic")
            path = Path(args.models_dir) / spec.name / "best.pt"
            payload = load_checkpoint(path)
        else:
            path = Path(args.checkpoint)
            payload = load_checkpoint(path)
            spec = load_env_spec(args.env) if args.env else _spec_of_checkpoint(payload["scenario"])
    except ScenarioError as err:
        return _fail(parser.prog, f"{path}: {err}" if path and not args.env else str(err))
    except CheckpointError as err:
        return _fail(parser.prog, str(err))

    import torch

    from doom_a3c.evaluation import run_episode, summarize
    from doom_a3c.recording import write_gif

    torch.set_num_threads(1)
    try:
        env = make_env(spec, seed=args.seed, render_mode="human" if args.render else "rgb_array" if args.gif else None)
    except DisplayError as err:
        return _fail(parser.prog, f"{err}; run it under xvfb-run -a, or record with --gif PATH")
    except ScenarioError as err:
        return _fail(parser.prog, str(err))
    model = None
    greedy = args.greedy or (not args.sample and getattr(spec, "eval_mode", "greedy") == "greedy")
    if payload is not None:
        try:
            model = model_from_checkpoint(payload, path, env.observation_space.shape, action_space=env.action_space)
        except CheckpointError as err:
            env.close()
            return _fail(parser.prog, str(err))
        model.eval()
        trained = payload.get("evaluation", {})
        note = f", evaluated at {trained['mean']:.1f} with {trained.get('mode', 'greedy')} actions" \
            if "mean" in trained else ""
        print(f"playing {spec.name} with {path} ({payload['counters'].get('frames', 0):,} frames trained{note}), "
              f"{'greedy' if greedy else 'sampled'} actions")
    else:
        print(f"playing {spec.name} with uniformly random actions (the random-agent baseline)")
    env.action_space.seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    results, frames = [], []
    try:
        for episode in range(1, args.episodes + 1):
            result = run_episode(env, model, greedy=greedy, record=args.gif is not None,
                                 generator=generator)
            frames.extend(result.frames)
            results.append(result)
            print(f"episode {episode}: reward {result.reward:.1f} in {result.length} steps")
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        fps = env.steps_per_second
        env.close()
    if not results:
        return EXIT_INTERRUPTED
    summary = summarize(results)
    print(f"mean reward over {summary['episodes']} episodes: {summary['mean']:.1f} ± {summary['std']:.1f} "
          f"(min {summary['min']:.1f}, max {summary['max']:.1f})")
    if args.gif:
        print(f"GIF written to {write_gif(args.gif, frames, fps=fps)}")
    return 0
