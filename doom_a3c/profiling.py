"""Where one training worker's time goes, section by section.

A real ``Worker`` (its games, its acting path, its update against a shared model) runs in this process,
pinned with its games to one core, and every rollout is timed by section: the games' steps (the engine,
then the observation's crop and resize), starting episodes (ViZDoom's ``new_episode`` reloads the map),
the acting forward passes, sampling the actions, the update (replay, loss, backward, clip, Adam step), the
weights pulled from the shared model, and the rest (the rollout loop's own bookkeeping, the messages to
the supervisor). ``benchmark.py`` says how fast training runs against the game; this says why.

With ``--weights CHECKPOINT`` the worker starts from trained weights (they keep training), so that its
episodes are as long as a trained agent's: where a trained agent's episodes are short (basic: 7 steps
against the random agent's 45), starting episodes becomes a large share of a worker's time.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time

SECTIONS = {
    "step": "the games' steps (engine, preprocessing)",
    "reset": "starting episodes (new_episode)",
    "acting": "acting forward passes",
    "sample": "sampling the actions",
    "update": "update (replay, loss, backward, clip, Adam)",
    "sync": "weights pulled from the shared model",
}


def profile_worker(scenario: str, rollouts: int = 150, warmup: int = 20, core: int = 0,
                   weights: str | None = None, acting: str = "ort", raw_seconds: float = 5.0) -> dict:
    """Time ``rollouts`` rollouts (after ``warmup``) of one worker with the preset's defaults, pinned with
    its games to ``core``, then the bare game for ``raw_seconds`` on the same core; returns ms a rollout per
    section, steps an episode, frames/s, and µs a step against the bare game's. This process's CPU
    affinity and torch threads are restored afterwards."""
    import torch

    from doom_a3c.acting import OnnxActor
    from doom_a3c.benchmark import _preset_config
    from doom_a3c.checkpoint import CheckpointError, load_checkpoint
    from doom_a3c.envs import load_env_spec, make_env
    from doom_a3c.messages import EpisodeDone
    from doom_a3c.model import ActorCritic
    from doom_a3c.worker import Worker, make_shared_handles

    spec = load_env_spec(scenario)
    cfg = _preset_config(spec, workers=1, acting=acting, cpu_affinity=False)
    if weights:
        payload = load_checkpoint(weights)
        if payload["scenario"].get("name") != spec.name:
            raise CheckpointError(f"{weights}: trained on '{payload['scenario'].get('name')}', not '{spec.name}'")
        model = ActorCritic(**payload["model_kwargs"])
        model.load_state_dict(payload["model"])
    else:
        env = make_env(spec, seed=0)
        try:
            model = ActorCritic.from_spaces(env.observation_space, env.action_space, cfg.hidden_size, cfg.lstm,
                                              **cfg.encoder_options())
        finally:
            env.close()
    affinity, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {core})  # the games started below inherit it: one core for the worker and its games
    torch.set_num_threads(1)
    shared = make_shared_handles(model, cfg)
    times = dict.fromkeys(SECTIONS, 0.0)
    episodes = [0]
    done = threading.Event()

    def drain() -> None:  # the supervisor's part: keep the worker's queue flowing, count the episodes
        while not done.is_set():
            try:
                message = shared.queues[0].get(timeout=0.1)
            except queue.Empty:
                continue
            episodes[0] += isinstance(message, EpisodeDone)

    def timed(section: str, call):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                times[section] += time.perf_counter() - start
        return wrapper

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    worker = None
    try:
        worker = Worker(0, cfg, spec, shared)
        actor_kind = "onnxruntime" if isinstance(worker.actor, OnnxActor) else "eager PyTorch"
        for env in worker.envs:
            env.step, env.reset = timed("step", env.step), timed("reset", env.reset)
        worker.actor = timed("acting", worker.actor)
        worker.head.sample = timed("sample", worker.head.sample)
        worker.update, worker.sync_weights = timed("update", worker.update), timed("sync", worker.sync_weights)
        for _ in range(warmup):
            worker.step()
        time.sleep(0.2)  # the warm-up's messages are counted before the measured span
        times.update(dict.fromkeys(times, 0.0))
        episodes[0] = 0
        steps, start = 0, time.perf_counter()
        for _ in range(rollouts):
            worker.step()
            steps += int(worker.mask.sum())
        total = time.perf_counter() - start
        time.sleep(0.2)  # the last rollout's episodes reach the counter
        worker.close()
        worker = None
        raw = _raw_step(spec, raw_seconds)  # the bare game on the same core, right after
    finally:
        done.set()
        reader.join(timeout=5)
        if worker is not None:
            worker.close()
        os.sched_setaffinity(0, affinity)
        torch.set_num_threads(threads)
    us_per_step = 1e6 * total / steps
    ms = {k: 1000 * v / rollouts for k, v in times.items()}
    ms["rest"] = 1000 * total / rollouts - sum(ms.values())
    return {
        "scenario": spec.name, "core": core, "rollouts": rollouts, "rollout_len": cfg.rollout_len,
        "envs_per_worker": cfg.envs_per_worker, "weights": weights,
        "acting": actor_kind,
        "ms_per_rollout": ms, "total_ms_per_rollout": 1000 * total / rollouts,
        "steps_per_episode": steps / episodes[0] if episodes[0] else None,
        "frames_per_s": steps * spec.frame_skip / total,
        "us_per_step": us_per_step,
        "raw_us_per_step": raw["us_per_step"], "raw_steps_per_episode": raw["steps_per_episode"],
        "ratio_to_raw": raw["us_per_step"] / us_per_step,
    }


def _raw_step(spec, seconds: float) -> dict:
    """µs a step of the bare game (benchmark.py's raw phase: random actions, nothing else) on this core."""
    from doom_a3c.benchmark import _stepper, time_steps

    step, close = _stepper(spec, preprocess=False, seed=1000)
    try:
        steps, episodes, elapsed = time_steps(step, seconds, warmup=0.2)
    finally:
        close()
    return {"us_per_step": 1e6 * elapsed / steps, "steps_per_episode": steps / episodes if episodes else None}


def format_profile(r: dict) -> str:
    """The figures as a Markdown table with a heading line."""
    from doom_a3c.benchmark import steps_text

    total = r["total_ms_per_rollout"]
    names = {**SECTIONS, "rest": "the rest (rollout bookkeeping, messages)"}
    lines = [f"profile: {r['scenario']}, one worker and its {r['envs_per_worker']} games on core {r['core']}, "
             f"{r['rollouts']} rollouts of {r['rollout_len']} steps; acting in {r['acting']}; "
             f"weights: {r['weights'] or 'untrained'}",
             "", "| section | ms a rollout | share |", "|---|---:|---:|"]
    lines += [f"| {names[k]} | {v:.2f} | {v / total:.0%} |" for k, v in r["ms_per_rollout"].items()]
    lines += [f"| total | {total:.2f} | |", ""]
    lines.append(f"steps an episode: {steps_text(r['steps_per_episode'])}; frames/s on this core: "
                 f"{r['frames_per_s']:,.0f}; {r['us_per_step']:,.0f} µs a step against the bare game's "
                 f"{r['raw_us_per_step']:,.0f} (random actions, {steps_text(r['raw_steps_per_episode'])} steps an "
                 f"episode, the same core): {r['ratio_to_raw']:.2f} of raw")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``profile_worker.py``: print the table (or JSON); exit 2 on bad input."""
    parser = argparse.ArgumentParser(prog="profile_worker.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", "--env", dest="scenario", default="basic",
                        help="ViZDoom scenario, gymnasium id or .toml path [default: basic]")
    parser.add_argument("--rollouts", type=int, default=150, help="rollouts timed [default: 150]")
    parser.add_argument("--warmup", type=int, default=20, help="rollouts run first, untimed [default: 20]")
    parser.add_argument("--core", type=int, default=0, help="the CPU core to pin to [default: 0]")
    parser.add_argument("--weights", default=None, metavar="CHECKPOINT",
                        help="start from these weights (e.g. models/pretrained/basic.pt): a trained agent's episodes")
    parser.add_argument("--acting", default="ort", choices=["ort", "torch"], help="the acting path [default: ort]")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.rollouts < 1 or args.warmup < 0:
        print("profile_worker.py: error: --rollouts must be positive and --warmup 0 or more", file=sys.stderr)
        return 2
    if args.core not in os.sched_getaffinity(0):
        print(f"profile_worker.py: error: --core {args.core} is not one this process may run on "
              f"({sorted(os.sched_getaffinity(0))})", file=sys.stderr)
        return 2
    from doom_a3c.checkpoint import CheckpointError
    from doom_a3c.envs import ScenarioError

    try:
        figures = profile_worker(args.scenario, args.rollouts, args.warmup, args.core, args.weights, args.acting)
    except (ScenarioError, CheckpointError) as err:
        print(f"profile_worker.py: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(figures, indent=2) if args.json else format_profile(figures))
    return 0
