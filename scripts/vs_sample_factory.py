#!/usr/bin/env python
"""Train Sample Factory 2.1.1 on a ViZDoom scenario for a given number of minutes on this machine's cores,
evaluate it over 100 episodes and print its row beside ours (issue 25's side-by-side):

    python -m venv ~/sf && ~/sf/bin/pip install torch==2.13.0 "sample-factory[vizdoom]==2.1.1"
    python scripts/vs_sample_factory.py --sf-python ~/sf/bin/python --env doom_defend_the_center --minutes 13

Sample Factory runs in a virtual environment of its own (it wants numpy < 2, gymnasium < 1.0 and
vizdoom < 2.0); this script only starts its own commands, with its own environment definitions
(`sf_examples.vizdoom`), 2 workers x 4 games on the CPU, and reads what its evaluation prints. Its rewards
are turned back into the stock scenario's raw reward (`raw_reward`), so the two rows compare the same thing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
from pathlib import Path

# Sample Factory's gathering scenarios ship their own .cfg: 0.01 a tic alive and no death penalty, where
# ViZDoom's stock files pay +1 a tic and -100 on death. Its other scenarios keep the stock rewards.
TICS_PER_UNIT = {"doom_health_gathering": 100, "doom_health_gathering_supreme": 100}
TIMEOUT_TICS = 2100

# enjoy.py logs each episode only with its `verbose`, which 2.1.1 hard-codes off; after every episode it logs
# the running mean of the last 100 (this format string), from which each episode's value is recovered.
RUNNING_MEAN = re.compile(r"Avg episode reward: -?[\d.]+, avg true_objective: (-?[\d.]+)")
COLLECTED = re.compile(r"Collected \{0: (\d+)\}")
MAIN_LOOP = re.compile(r"main_loop: ([\d.]+)")


def raw_reward(env: str, true_objective: float) -> float:
    """The stock scenario's reward for an episode Sample Factory reports as ``true_objective`` (its reward
    before its own shaping): for the gathering scenarios, tics alive, less 100 for a death before the timeout."""
    if env not in TICS_PER_UNIT:
        return true_objective
    tics = round(true_objective * TICS_PER_UNIT[env])
    return float(tics if tics >= TIMEOUT_TICS else tics - 100)


def episode_rewards(env: str, log: str) -> list[float]:
    """The raw reward of every episode of an evaluation (up to 100), from the running means its log prints
    after each: episode k is k x mean_k - (k - 1) x mean_(k-1). The means are printed to 3 decimals, so an
    episode's value is good to about k/1000: the gathering scenarios' tics to within 10 (100 per unit), the
    others' rewards to 0.1 (they are rounded there)."""
    means = [float(m) for m in RUNNING_MEAN.findall(log)][:100]
    values = [k * m - (k - 1) * previous for k, (m, previous) in enumerate(zip(means, [0.0, *means]), start=1)]
    return [raw_reward(env, v) if env in TICS_PER_UNIT else round(v, 1) for v in values]


def _hear_ctrl_c() -> None:
    """In the child before it starts: Ctrl-C back to its default. Started in the background from a script
    (`python vs_sample_factory.py ... &`), this process and its children inherit Ctrl-C ignored, and Python
    then installs no KeyboardInterrupt handler: the SIGINT below was lost and its training ran on (seen: 36
    minutes of a 28.7-minute run, until the handler was put back by hand)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def train(args: argparse.Namespace, common: list[str]) -> int:
    """Sample Factory's training for ``args.minutes`` of wall-clock, then Ctrl-C (it saves a checkpoint and
    exits with code 2): 2.1.1's own ``--train_for_seconds`` never stops it, as its runner never adds to the
    ``total_train_seconds`` it compares (``sample_factory/algo/runners/runner.py``)."""
    process = subprocess.Popen([args.sf_python, "-m", "sf_examples.vizdoom.train_vizdoom", *common,
                                "--num_workers=2", "--num_envs_per_worker=4", f"--seed={args.seed}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_hear_ctrl_c)
    try:
        _, err = process.communicate(timeout=args.minutes * 60)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=300)  # it saves a checkpoint and stops its workers
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
            print("vs_sample_factory.py: Sample Factory did not stop within 300 s of Ctrl-C; killed", file=sys.stderr)
            return 1
        if process.returncode in (0, 2):
            return 0
    print(err[-3000:], file=sys.stderr)
    print(f"vs_sample_factory.py: training ended early with code {process.returncode}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sf-python", required=True, help="the python of Sample Factory's virtual environment")
    parser.add_argument("--env", required=True, help="Sample Factory's environment, e.g. doom_defend_the_center")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock training time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes, at most 100 [default: 100]")
    parser.add_argument("--train-dir", default="runs/sample_factory", help="Sample Factory's runs")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="evaluate the experiment a finished training left in --train-dir")
    parser.add_argument("--json", default="docs/sample_factory.json",
                        help="append the row to this JSON file, which doom_results.py's table reads "
                             "[default: docs/sample_factory.json]")
    args = parser.parse_args(argv)
    if not Path(args.sf_python).is_file():
        print(f"vs_sample_factory.py: error: no python at {args.sf_python}", file=sys.stderr)
        return 2
    if args.minutes <= 0 or not 1 <= args.episodes <= 100:  # its log's running means cover 100 episodes
        print("vs_sample_factory.py: error: --minutes must be positive and --episodes 1 to 100", file=sys.stderr)
        return 2
    experiment = f"{args.env}-seed{args.seed}"
    common = [f"--env={args.env}", "--algo=APPO", f"--experiment={experiment}", f"--train_dir={args.train_dir}",
              "--device=cpu"]
    if not args.evaluate_only:
        code = train(args, common)
        if code:
            return code
    log = Path(args.train_dir) / experiment / "sf_log.txt"
    text = log.read_text() if log.is_file() else ""
    collected, loop = COLLECTED.findall(text), MAIN_LOOP.findall(text)
    if not collected or not loop:
        print(f"vs_sample_factory.py: error: {log} has no finished training to evaluate", file=sys.stderr)
        return 2
    # Its own count of the frames it trained on, and of the seconds its main loop ran (the run's last ones).
    row = {"env": args.env, "seed": args.seed, "minutes": float(loop[-1]) / 60, "frames": int(collected[-1])}
    # Sample Factory 2.1.1 reads its checkpoints back with torch.load's default, which torch 2.6 made
    # weights_only=True and which its pickled checkpoints fail; this restores the old default in its process
    # alone, for the checkpoints its own training just wrote.
    sf_env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    for mode, flags in (("sampled", []), ("greedy", ["--eval_deterministic=True"])):
        evaluation = subprocess.run([args.sf_python, "-m", "sf_examples.vizdoom.enjoy_vizdoom", *common,
                                     "--no_render", f"--max_num_episodes={args.episodes}", *flags],
                                    capture_output=True, text=True, env=sf_env)
        rewards = episode_rewards(args.env, evaluation.stdout + evaluation.stderr)[:args.episodes]
        # enjoy_vizdoom's main returns a tuple that sys.exit turns into code 1 on success: the episodes say.
        if len(rewards) < args.episodes:
            print((evaluation.stdout + evaluation.stderr)[-3000:], file=sys.stderr)
            print(f"vs_sample_factory.py: evaluation exited with code {evaluation.returncode}", file=sys.stderr)
            return 1
        row[mode] = {"mean": statistics.fmean(rewards), "std": statistics.pstdev(rewards), "episodes": len(rewards)}
    print(f"| Sample Factory 2.1.1 APPO, `--env={args.env}`, seed {args.seed} | {row['minutes']:.1f} | "
          f"{row['frames'] / 1e6:.2f}M | {row['frames'] / (row['minutes'] * 60):,.0f} | "
          f"{row['sampled']['mean']:.1f} ± {row['sampled']['std']:.1f} | "
          f"{row['greedy']['mean']:.1f} ± {row['greedy']['std']:.1f} |")
    if args.json:
        store = Path(args.json)
        rows = json.loads(store.read_text()) if store.is_file() else []
        store.write_text(json.dumps([*rows, row], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
