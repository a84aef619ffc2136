#!/usr/bin/env python
"""The classic policy-gradient comparison, with this project's one trainer:

    python scripts/compare_pg.py                       # CartPole-v1, 5 variants, 1 seed -> docs/pg_variants_cartpole.png
    python scripts/compare_pg.py --seeds 1 2 3 --frames 1000000

Each variant is a real ``scripts/train.py`` run with the same frame budget, workers and network; only
the policy-gradient options differ. The plot shows the training episodes' reward (sampled actions,
smoothed) and the periodic greedy evaluation against frames, averaged over seeds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doom_a3c.curves import scalars as _scalars, smooth as _smooth  # noqa: E402

# label -> train.py options. Whole-episode rollouts for the critic-free estimators: they have no value
# to bootstrap a cut-off rollout from.
VARIANTS = {
    "vanilla PG (discounted returns)": ["--advantage", "returns", "--rollout-len", "0", "--entropy-beta", "0"],
    "returns - mean baseline": ["--advantage", "returns-mean", "--rollout-len", "0", "--entropy-beta", "0"],
    "returns - mean baseline + entropy": ["--advantage", "returns-mean", "--rollout-len", "0",
                                          "--entropy-beta", "0.01"],
    "learned critic, GAE, whole episodes": ["--advantage", "gae", "--rollout-len", "0"],
    "learned critic, GAE, 10-step rollouts (A3C)": ["--advantage", "gae", "--rollout-len", "10"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", help="environment id")
    parser.add_argument("--frames", type=int, default=600_000, help="frame budget of each run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="seeds; curves are averaged over them")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per run")
    parser.add_argument("--out", default=str(ROOT / "docs" / "pg_variants_cartpole.png"), help="PNG to write")
    parser.add_argument("--runs-dir", default="runs/compare_pg", help="where the runs' TensorBoard logs go")
    parser.add_argument("--plot-only", action="store_true", help="plot the runs already in --runs-dir")
    args = parser.parse_args(argv)

    runs_dir = Path(args.runs_dir)
    name = args.env.replace("/", "-")
    if not args.plot_only:
        for label, options in VARIANTS.items():
            for seed in args.seeds:
                run_name = f"{_slug(label)}-seed{seed}"
                print(f"== {label}, seed {seed}", flush=True)
                command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--env", args.env, *options,
                           "--seed", str(seed), "--workers", str(args.workers), "--max-frames", str(args.frames),
                           "--max-minutes", "0", "--target-reward", "inf", "--eval-interval", "5",
                           "--eval-episodes", "5", "--final-eval-episodes", "20", "--gif-interval", "0",
                           "--log-interval", "30", "--runs-dir", str(runs_dir), "--run-name", run_name,
                           "--models-dir", str(runs_dir / "models" / run_name),
                           "--frames-dir", str(runs_dir / "frames" / run_name)]
                result = subprocess.run(command, text=True, capture_output=True)
                final = [line for line in result.stdout.splitlines() if line.startswith("final evaluation")]
                print(final[-1] if final else result.stdout[-2000:] + result.stderr[-2000:], flush=True)
                if result.returncode != 0:
                    return result.returncode

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_train, ax_eval) = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    grid = np.linspace(0, args.frames, 200)
    for label in VARIANTS:
        curves = {"train": [], "eval": []}
        for seed in args.seeds:
            run = runs_dir / name / f"{_slug(label)}-seed{seed}"
            steps, rewards = _scalars(run, "charts/episode_reward")
            if len(steps):
                curves["train"].append(np.interp(grid, steps, _smooth(rewards, 100), left=np.nan))
            steps, rewards = _scalars(run, "eval/mean_reward")
            if len(steps):
                curves["eval"].append(np.interp(grid, steps, rewards, left=np.nan))
        for key, axis in (("train", ax_train), ("eval", ax_eval)):
            if curves[key]:
                with warnings.catch_warnings():  # before a run's first point every seed is NaN: left blank
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mean = np.nanmean(curves[key], axis=0)
                axis.plot(grid, mean, label=label)
    seeds = f"{len(args.seeds)} seed{'s' if len(args.seeds) > 1 else ''}"
    ax_train.set_title(f"{args.env}: training episodes (sampled, mean of last 100)")
    ax_eval.set_title(f"{args.env}: greedy evaluation (5 episodes)")
    for axis in (ax_train, ax_eval):
        axis.set_xlabel("frames (env steps)")
        axis.grid(alpha=0.3)
    ax_train.set_ylabel(f"episode reward ({seeds}, {args.workers} async workers)")
    ax_eval.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"plot written to {out}")
    return 0


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")


if __name__ == "__main__":
    sys.exit(main())
