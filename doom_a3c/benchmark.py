"""Training speed as a fraction of the game's own speed, measured in one run on the same cores.

Three phases, one after the other, each with one process per core (``--workers``):

1. raw game: the scenario's ViZDoom game, configured exactly as training configures it (for a gymnasium
   game: ``gym.make`` alone; Atari with the emulator's own frame skip), stepped with random actions and
   nothing else;
2. the same through the environment training uses (``DoomEnv``: crop, resize, grayscale; Atari:
   gymnasium's AtariPreprocessing and frame stacking);
3. training: the real ``Trainer`` with the scenario's or game's defaults, frames counted over a fixed span
   after a warm-up, and the peak resident memory of all its processes;
4. with ``--ray ADDRESS``: the same training with the workers as Ray actors around a parameter server,
   and its speed as a fraction of phase 3's (memory: every process of the run, Ray's and the games' too).

Frames are environment steps x frame skip in every phase, so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import os
import random
import sys
import tempfile
import threading
import time

import torch.multiprocessing as mp

from doom_a3c.progress import phase


def _stepper(spec, preprocess: bool, seed: int):
    """(step, close): ``step()`` takes one random action in the game, starting a new episode where one
    ends (and then returns True). Raw: the bare game (ViZDoom configured as training configures it, or
    ``gym.make`` with the emulator's own frame skip for Atari); preprocessed: the environment training uses."""
    from doom_a3c.envs import make_env
    from doom_a3c.envs.doom import build_game
    from doom_a3c.envs.gym_envs import GymSpec, register_gym_envs

    if not preprocess and not isinstance(spec, GymSpec):
        rng = random.Random(seed)
        game = build_game(spec, seed=seed)
        actions = [[float(x) for x in a] for a in spec.actions]
        skip = spec.frame_skip

        def step_game() -> bool:
            game.make_action(actions[rng.randrange(len(actions))], skip)
            if game.is_episode_finished():
                game.new_episode()
                return True
            game.get_state()  # what training reads every step: the screen buffer
            return False

        return step_game, game.close
    if preprocess:
        env = make_env(spec, seed=seed)
    else:
        import gymnasium as gym

        register_gym_envs()
        kwargs = dict(spec.env_kwargs, **({"frameskip": spec.frame_skip} if spec.atari else {}))
        env = gym.make(spec.env_id, **kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)

    def step_env() -> bool:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
            return True
        return False

    return step_env, env.close


def _game_loop(spec, seconds: float, warmup: float, preprocess: bool, seed: int, barrier, results) -> None:
    """One process: step the game with random actions; report frames/s, steps and episodes ended over
    ``seconds`` after ``warmup``."""
    step, close = _stepper(spec, preprocess, seed)
    barrier.wait(timeout=120)  # every process measures over the same stretch of time
    steps, episodes, elapsed = time_steps(step, seconds, warmup)
    results.put((steps * spec.frame_skip / elapsed, steps, episodes))
    close()


def time_steps(step, seconds: float, warmup: float) -> tuple[int, int, float]:
    """Call ``step`` (a ``_stepper`` step) for ``warmup`` seconds, then for ``seconds`` more; the steps,
    the episodes ended and the seconds of the measured span."""
    deadline = time.monotonic() + warmup
    while time.monotonic() < deadline:
        step()
    steps, episodes, start = 0, 0, time.monotonic()
    while True:
        for _ in range(64):
            episodes += step()
        steps += 64
        if (elapsed := time.monotonic() - start) >= seconds:
            return steps, episodes, elapsed


def measure_game(spec, workers: int, seconds: float, warmup: float, preprocess: bool) -> dict:
    """Total frames/s of ``workers`` processes stepping the game at once, and their mean steps an episode."""
    # ViZDoom creates ./_vizdoom/ when a game starts; two games starting at once in a fresh folder race for
    # it ("Failed to create ./_vizdoom/ directory: File exists") and one fails. Made here first.
    os.makedirs("_vizdoom", exist_ok=True)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    # Daemons, and a bounded wait at the barrier: a game that fails to start must not hang the others.
    processes = [ctx.Process(target=_game_loop, args=(spec, seconds, warmup, preprocess, 1000 + i, barrier, results),
                             daemon=True) for i in range(workers)]
    for process in processes:
        process.start()
    reports = [results.get(timeout=seconds + warmup + 120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    steps, episodes = sum(r[1] for r in reports), sum(r[2] for r in reports)
    return {"fps": sum(r[0] for r in reports), "episode_steps": steps / episodes if episodes else None}


def _peak_rss_bytes(pid: int) -> int:
    """Peak resident set size of a live process (Linux's VmHWM); 0 where it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _preset_config(spec, **settings):
    """A TrainConfig with the scenario's own [train] defaults, as train_doom.py applies them, over ``settings``."""
    from doom_a3c.config import TrainConfig

    cfg = TrainConfig(scenario=spec.name, **settings)
    for key, value in spec.train.items():
        setattr(cfg, key, type(getattr(cfg, key))(value))
    return cfg


def measure_training(spec, workers: int, seconds: float, warmup: float, ray: str = "") -> dict:
    """Run the real trainer with its defaults; frames/s over ``seconds`` after ``warmup``, and peak memory
    (of the trainer and its workers; with ``ray``, of every process the run started)."""
    from doom_a3c.backends.reaper import descendants
    from doom_a3c.trainer import Trainer

    with tempfile.TemporaryDirectory(prefix="doom_a3c_bench_") as tmp:
        cfg = _preset_config(spec, workers=workers, run_name="benchmark", runs_dir=f"{tmp}/runs",
                             models_dir=f"{tmp}/models", frames_dir=f"{tmp}/frames", final_eval_episodes=1, ray=ray)
        # Stopped by the sampler, not by a budget or a target; max_frames stays the scenario's, so a decayed
        # learning rate follows the schedule a real run starts on.
        cfg.max_minutes, cfg.target_reward = 0.0, math.inf
        trainer = Trainer(cfg, spec, out=io.StringIO())
        measured: dict = {}
        finished = threading.Event()  # training ended by itself (its workers failed): nothing to measure

        def sample() -> None:
            while trainer.workers is None or trainer.workers.total_frames() == 0:
                if finished.wait(0.05):  # until the workers have finished their first update
                    return
            if finished.wait(warmup):
                return
            frames0, episodes0, start = trainer.workers.total_frames(), trainer.counters["episodes"], time.monotonic()
            if finished.wait(seconds):
                return
            frames1, episodes1, end = trainer.workers.total_frames(), trainer.counters["episodes"], time.monotonic()
            steps, episodes = (frames1 - frames0) / spec.frame_skip, episodes1 - episodes0
            pids = [os.getpid()] + (list(descendants(os.getpid())) if ray else trainer.workers.pids())
            measured.update(fps=(frames1 - frames0) / (end - start),
                            episode_steps=steps / episodes if episodes else None,
                            peak_rss_bytes=sum(_peak_rss_bytes(pid) for pid in pids),
                            processes=len(pids))
            trainer.request_stop()

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = trainer.train()
        finished.set()
        sampler.join()
    if "fps" not in measured:
        raise RuntimeError(f"training stopped ({result.stop_reason}) before its speed could be measured")
    return {**measured, "envs_per_worker": cfg.envs_per_worker}


def run(scenario: str, workers: int, seconds: float, warmup: float, ray: str = "") -> dict:
    """All three phases (four with ``ray``); returns the figures as a dict."""
    from doom_a3c.envs import load_env_spec

    spec = load_env_spec(scenario)
    phases = 4 if ray else 3
    span = f"{workers} process{'es' if workers > 1 else ''}, {warmup:g} s of warm-up and {seconds:g} s measured"
    phase(f"phase 1 of {phases}: the bare game ({span})...")
    raw = measure_game(spec, workers, seconds, warmup, preprocess=False)
    phase(f"phase 2 of {phases}: the game with its preprocessing ({span})...")
    preprocessed = measure_game(spec, workers, seconds, warmup, preprocess=True)
    phase(f"phase 3 of {phases}: training ({span}, and the start and stop of a run)...")
    training = measure_training(spec, workers, seconds, warmup)
    if ray:
        phase(f"phase 4 of {phases}: training with the workers as Ray actors ({span}, and Ray's start)...")
    on_ray = measure_training(spec, workers, seconds, warmup, ray=ray) if ray else None
    return {
        "scenario": spec.name,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "seconds": seconds,
        "frame_skip": spec.frame_skip,
        "resolution": getattr(spec, "resolution", None),
        "observation": list(_observation_shape(spec)),
        "raw_fps": raw["fps"],
        "preprocessed_fps": preprocessed["fps"],
        "training_fps": training["fps"],
        "training_envs_per_worker": training["envs_per_worker"],
        "preprocessed_ratio": preprocessed["fps"] / raw["fps"],
        "training_ratio": training["fps"] / raw["fps"],
        # Steps an episode in each phase (None: no episode ended): where a learning agent's episodes are
        # shorter than the random agent's, starting episodes (ViZDoom's new_episode reloads the map) costs
        # training more per frame than it costs the raw game.
        "raw_episode_steps": raw["episode_steps"],
        "preprocessed_episode_steps": preprocessed["episode_steps"],
        "training_episode_steps": training["episode_steps"],
        "training_peak_rss_mb": training["peak_rss_bytes"] / 2**20,
        "training_processes": training["processes"],
        **({"ray": ray, "ray_fps": on_ray["fps"], "ray_ratio": on_ray["fps"] / raw["fps"],
            "ray_to_local": on_ray["fps"] / training["fps"], "ray_episode_steps": on_ray["episode_steps"],
            "ray_peak_rss_mb": on_ray["peak_rss_bytes"] / 2**20,
            "ray_processes": on_ray["processes"]} if on_ray else {}),
    }


def measure_parameter_server(scenario: str, senders: int, seconds: float, warmup: float,
                             training_fps_per_worker: float | None = None) -> dict:
    """How many updates a second one Ray parameter server applies for the preset's model, fed by
    ``senders`` synthetic workers that send a gradient vector the moment the last one is answered; hence
    the frames/s at which it saturates (updates/s x frames an update) and, given the training frames/s of
    one worker, how many workers saturate it. On a private Ray instance on this machine."""
    from doom_a3c.backends import ray_cluster
    from doom_a3c.envs import load_env_spec, make_env
    from doom_a3c.model import ActorCritic

    spec = load_env_spec(scenario)
    cfg = _preset_config(spec)
    env = make_env(spec)
    try:
        model = ActorCritic.from_spaces(env.observation_space, env.action_space, cfg.hidden_size, cfg.lstm,
                                              **cfg.encoder_options())
        steps = cfg.rollout_len or getattr(env, "max_episode_steps", None) or 1  # whole episodes: at most this
    finally:
        env.close()
    frames_per_update = steps * cfg.envs_per_worker * spec.frame_skip
    ray_cluster.connect("local", senders)
    try:
        updates = ray_cluster.measure_parameter_server(model, cfg, frames_per_update, senders, seconds, warmup)
    finally:
        ray_cluster.disconnect()
    params = sum(p.numel() for p in model.parameters())
    figures = {"scenario": spec.name, "parameters": params, "senders": senders, "updates_per_s": updates,
               "frames_per_update": frames_per_update, "saturation_fps": updates * frames_per_update,
               "megabytes_per_update": 2 * params * 4 / 2**20}
    if training_fps_per_worker:
        figures["workers_at_saturation"] = updates * frames_per_update / training_fps_per_worker
    return figures


def _observation_shape(spec) -> tuple[int, ...]:
    """What the network sees: a scenario says it; a gymnasium game's wrappers decide it."""
    if hasattr(spec, "obs_shape"):
        return tuple(spec.obs_shape)
    from doom_a3c.envs import make_env

    env = make_env(spec)
    try:
        return tuple(env.observation_space.shape)
    finally:
        env.close()


def steps_text(value: float | None) -> str:
    """Steps an episode as a table shows them ("-": no episode ended)."""
    return "-" if value is None else f"{value:,.1f}"


def format_table(r: dict) -> str:
    """The figures as a Markdown table with a heading line."""
    lines = [
        f"benchmark: {r['scenario']}, {r['workers']} processes on {r['cpu_count']} cores, {r['seconds']:g} s per "
        f"phase; frames = env steps x frame skip {r['frame_skip']}; "
        f"{(r['resolution'] + ' -> ') if r.get('resolution') else 'observation '}{tuple(r['observation'])}",
        "",
        "| phase | frames/s | ratio to raw | steps an episode |",
        "|---|---:|---:|---:|",
        f"| raw game, random actions | {r['raw_fps']:,.0f} | 1.00 | {steps_text(r['raw_episode_steps'])} |",
        f"| game + observation preprocessing | {r['preprocessed_fps']:,.0f} | {r['preprocessed_ratio']:.2f} | "
        f"{steps_text(r['preprocessed_episode_steps'])} |",
        f"| training (its defaults, {r['training_envs_per_worker']} games per worker) | "
        f"{r['training_fps']:,.0f} | {r['training_ratio']:.2f} | {steps_text(r['training_episode_steps'])} |",
        "",
        f"peak resident memory of the {r['training_processes']} training processes together: "
        f"{r['training_peak_rss_mb']:,.0f} MB",
    ]
    if "ray_fps" in r:
        lines[7:7] = [f"| training on Ray (--ray {r['ray']}), {r['ray_to_local']:.2f} of the local processes' | "
                      f"{r['ray_fps']:,.0f} | {r['ray_ratio']:.2f} | {steps_text(r.get('ray_episode_steps'))} |"]
        lines.append(f"on Ray: peak resident memory of all {r['ray_processes']} processes of the run (Ray's own "
                     f"and the games' included): {r['ray_peak_rss_mb']:,.0f} MB")
    if "parameter_server" in r:
        ps = r["parameter_server"]
        lines += ["", f"parameter server (one Ray actor, {ps['senders']} synthetic workers on these cores): "
                      f"{ps['updates_per_s']:,.0f} updates/s of {ps['parameters']:,} parameters "
                      f"({ps['megabytes_per_update']:.2f} MB in and out an update) -> saturated at "
                      f"{ps['saturation_fps']:,.0f} frames/s ({ps['frames_per_update']} frames an update), about "
                      f"{ps['workers_at_saturation']:.0f} workers at the {r['training_fps'] / r['workers']:,.0f} "
                      f"frames/s each of the training phase"]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "benchmark.py") -> int:
    """``benchmark.py`` (``doom-a3c benchmark``): print the table (or JSON); exit 2 on bad input."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", "--env", dest="scenario", default="basic",
                        help="ViZDoom scenario, gymnasium id (CartPole-v1, ALE/Pong-v5) or .toml path [default: basic]")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured span of each phase [default: 30]")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds run before each measured span [default: 5]")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"processes in every phase [default: the number of CPU cores, {os.cpu_count()} here]")
    parser.add_argument("--ray", nargs="?", const="local", default="", metavar="ADDRESS",
                        help="also train with the workers as Ray actors (local: a private instance; auto or "
                             "HOST:PORT: a running cluster) and compare with the local processes")
    parser.add_argument("--parameter-server", action="store_true",
                        help="also measure how many updates a second one Ray parameter server applies for this "
                             "preset's model, fed by --senders synthetic workers, and so where it saturates")
    parser.add_argument("--senders", type=int, default=4,
                        help="synthetic workers feeding the parameter server [default: 4]")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    workers = args.workers if args.workers is not None else os.cpu_count() or 1  # --workers 0 is refused
    if workers < 1 or args.seconds <= 0 or args.warmup < 0 or args.senders < 1:
        print(f"{prog}: error: --workers, --senders and --seconds must be positive, --warmup 0 or more",
              file=sys.stderr)
        return 2
    from doom_a3c.backends import RAY_MISSING, ClusterError
    from doom_a3c.envs import ScenarioError

    if (args.ray or args.parameter_server) and importlib.util.find_spec("ray") is None:
        print(f"{prog}: error: {RAY_MISSING.replace('--ray', '--ray and --parameter-server')}", file=sys.stderr)
        return 2
    try:
        figures = run(args.scenario, workers, args.seconds, args.warmup, ray=args.ray)
        if args.parameter_server:
            phase(f"and the parameter server: {args.senders} synthetic workers, {args.warmup:g} s of warm-up and "
                  f"{args.seconds:g} s measured...")
            figures["parameter_server"] = measure_parameter_server(
                args.scenario, args.senders, args.seconds, args.warmup, figures["training_fps"] / workers)
    except (ScenarioError, ClusterError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # the training phase failed: its workers' errors are printed above
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(figures, indent=2) if args.json else format_table(figures))
    return 0
