"""Command-line entry points: ``doom-a3c COMMAND`` (``main``, installed as a console script; also ``python -m
doom_a3c``), and the ``scripts/*.py`` of a checkout, which call the same functions."""

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


def train_main(argv: list[str] | None = None, prog: str = "train_doom.py") -> int:
    """``train_doom.py``: train A3C on a ViZDoom scenario until it reaches the target or a limit."""
    from doom_a3c.config import add_config_arguments

    parser = argparse.ArgumentParser(
        prog=prog,
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


def train_any_main(argv: list[str] | None = None, prog: str = "train.py", default_env: str = "") -> int:
    """``train.py`` (``doom-a3c train``, whose ``default_env`` is basic): the same trainer for any environment:
    ViZDoom, Atari, classic control, Box2D."""
    from doom_a3c.config import add_config_arguments

    parser = argparse.ArgumentParser(
        prog=prog,
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
    args.scenario = args.scenario or default_env
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


def play_main(argv: list[str] | None = None, prog: str = "play.py") -> int:
    """``play.py``: load a checkpoint and watch the agent play, print rewards, optionally record a GIF."""
    parser = argparse.ArgumentParser(
        prog=prog,
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
    parser.add_argument("--gif-frames", type=int, default=0, metavar="N",
                        help="record only the first N frames (0: all); explained frames take ~50 kB each in the GIF and "
                             "~0.1 s each to draw")
    parser.add_argument("--explain", action="store_true",
                        help="with --gif: beside the game, the agent's input, where it looks (perturbation saliency "
                             "for its policy and its value), its action probabilities, its value and reward so far")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--sample", action="store_true", help="sample actions from the policy")
    mode.add_argument("--greedy", action="store_true", help="take the most likely action")
    parser.add_argument("--random", action="store_true",
                        help="play uniformly random actions, no checkpoint: the baseline a trained agent beats")
    parser.add_argument("--seed", type=int, default=0, help="game seed")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        return _fail(parser.prog, f"--episodes must be at least 1, got {args.episodes}")
    if args.gif_frames < 0:
        return _fail(parser.prog, f"--gif-frames must be 0 (all) or more, got {args.gif_frames}")
    if args.explain and (args.gif is None or args.random):
        return _fail(parser.prog, "--explain draws into the GIF of a trained agent: give --gif PATH (and no --random)")

    from doom_a3c.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
    from doom_a3c.pretrained import find_model, no_model, short_of
    from doom_a3c.envs import (DisplayError, ScenarioError, WindowClosed, has_display, load_env_spec, make_env,
                               spec_of_checkpoint)

    installed = parser.prog.startswith("doom-a3c")  # the hints name the commands the user is running
    if args.render and not has_display():
        command = parser.prog if installed else "python scripts/play.py"
        return _fail(parser.prog, "--render needs a display and none was found; run it under a virtual one "
                                  f"(xvfb-run -a {command} --render) or record with --gif PATH")
    payload, path = None, None
    try:
        if args.random:
            spec = load_env_spec(args.env or "basic")
        elif args.checkpoint is None:
            spec = load_env_spec(args.env or "basic")
            path, which = find_model(spec, args.models_dir)
            if path is None:
                train = "doom-a3c train" if installed else "python scripts/train.py"
                return _fail(parser.prog, no_model(spec, args.models_dir, f"`{train} --env {args.env or spec.name}`"))
            if path.is_relative_to(Path.cwd()):  # as the user would type it
                path = path.relative_to(Path.cwd())
            payload = load_checkpoint(path)
        else:
            path, which = Path(args.checkpoint), "checkpoint"
            payload = load_checkpoint(path)
            spec = load_env_spec(args.env) if args.env else spec_of_checkpoint(payload["scenario"])
    except ScenarioError as err:
        return _fail(parser.prog, f"{path}: {err}" if path and not args.env else str(err))
    except CheckpointError as err:
        return _fail(parser.prog, str(err))

    import torch

    from doom_a3c.evaluation import play_episodes, summarize
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
        if args.explain and (model.num_actions == 0 or len(model.obs_shape) != 3):
            env.close()
            return _fail(parser.prog, f"--explain needs pictures in and discrete actions out; {spec.name}'s model "
                                      f"takes {model.obs_shape} and has {model.describe_action_space()}")
        trained = payload.get("evaluation", {})
        note = ""
        if "mean" in trained:
            note = f", evaluated at {trained['mean']:.1f} with {trained.get('mode', 'greedy')} actions"
            note += f" over {trained['episodes']} episodes" if "episodes" in trained else ""
            note += f", short of its target {trained['target']:g}" if short_of(trained) else ""
        print(f"playing {spec.name} with {which} {path} ({payload['counters'].get('frames', 0):,} frames "
              f"trained{note}), {'greedy' if greedy else 'sampled'} actions")
    else:
        print(f"playing {spec.name} with uniformly random actions (the random-agent baseline)")

    explain = None
    if args.explain:
        from doom_a3c.explain import Explainer, action_labels, colour_input

        labels = action_labels(spec, env, model.num_actions)
        explain = lambda: Explainer(labels, getattr(spec, "crop", None), spec.reward_scale,  # noqa: E731
                                    colour_input(spec))

    def said(episode: int, result) -> None:
        print(f"episode {episode}: reward {result.reward:.1f} in {result.length} steps")

    try:
        results, stopped = play_episodes(env, model, args.episodes, greedy=greedy, seed=args.seed,
                                         record=args.gif is not None, on_episode=said, explain=explain,
                                         max_frames=args.gif_frames, stop_on=(KeyboardInterrupt, WindowClosed))
    finally:
        fps = env.steps_per_second
        env.close()
    if stopped is not None:
        print(f"{stopped}; stopping" if isinstance(stopped, WindowClosed) else "interrupted")
    frames = [frame for result in results for frame in result.frames]
    if not results:
        return EXIT_INTERRUPTED
    summary = summarize(results)
    print(f"mean reward over {summary['episodes']} episodes: {summary['mean']:.1f} ± {summary['std']:.1f} "
          f"(min {summary['min']:.1f}, max {summary['max']:.1f})")
    if args.gif:
        print(f"GIF written to {write_gif(args.gif, frames, fps=fps)}")
    return 0


# doom-a3c's commands: (module, function, what it does). Each function takes (argv, prog) and returns the exit code.
COMMANDS = {
    "train": ("doom_a3c.cli", "train_any_main", "train an agent on a ViZDoom scenario (default: basic) or any game"),
    "play": ("doom_a3c.cli", "play_main", "watch a trained (or the shipped) agent play; GIFs; the random baseline"),
    "list": ("doom_a3c.cli", "list_main", "the scenarios and games with tuned presets"),
    "benchmark": ("doom_a3c.benchmark", "main", "training speed against the bare game's, on the same cores"),
    "seeds": ("doom_a3c.seeds", "main", "one preset over several seeds: frames and minutes to the target"),
    "results": ("doom_a3c.results", "main", "train the Doom scenarios and write the results table and curves"),
    "ship": ("doom_a3c.pretrained", "main", "ship trained models that reach their targets as package data"),
}


def list_main(argv: list[str] | None = None, prog: str = "doom-a3c list") -> int:
    """``doom-a3c list``: every scenario and game with a preset, and its target."""
    argparse.ArgumentParser(prog=prog, description="The scenarios and games with tuned presets.").parse_args(argv)
    from doom_a3c.envs import env_table

    print(env_table())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``doom-a3c COMMAND [OPTIONS]``: the commands above; ``doom-a3c COMMAND --help`` for each one's options."""
    import importlib

    from doom_a3c import __version__

    argv = sys.argv[1:] if argv is None else list(argv)
    usage = "\n".join(["usage: doom-a3c COMMAND [OPTIONS]   (doom-a3c COMMAND --help for its options)", "",
                       "commands:", *(f"  {name:<10} {what}" for name, (_, _, what) in COMMANDS.items())])
    if not argv or argv[0] in ("-h", "--help"):
        print(usage, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else EXIT_USAGE
    if argv[0] == "--version":
        print(f"doom-a3c {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        return _fail("doom-a3c", f"unknown command '{argv[0]}'; the commands: {', '.join(COMMANDS)}")
    module, function, _ = COMMANDS[argv[0]]
    run = getattr(importlib.import_module(module), function)
    prog = f"doom-a3c {argv[0]}"
    if argv[0] == "train":
        return run(argv[1:], prog=prog, default_env="basic")
    if argv[0] in ("play", "list"):  # `doom-a3c play | head` ends quietly, as other tools do
        import signal

        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return run(argv[1:], prog=prog)
