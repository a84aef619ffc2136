"""The Doom results table: train each scenario with its own defaults, one after the other, then write
``docs/doom_results.md`` (the table), ``docs/doom_results.json`` (the figures behind it) and
``docs/doom_curves.png`` (each scenario's evaluation and training curves against frames and minutes).

Each run is a real training process (``python -m doom_a3c train``), so a row is exactly what a user gets
from ``python scripts/train_doom.py --scenario NAME`` or ``doom-a3c train --scenario NAME``; the figures are read back from the run's checkpoint,
TensorBoard events and ``config.json``. A row is one (scenario, seed) run: a re-run replaces its own row
and keeps the others, and a scenario trained over several seeds shows one row per seed (issue 25 counts a
target as reached only when every seed reaches it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from doom_a3c.curves import scalars, smooth
from doom_a3c.resources import CHECKOUT, IN_CHECKOUT
from doom_a3c.summaries import reward_digits



def run_scenario(name: str, runs_dir: Path, extra: list[str], seed: int) -> dict:
    """Train one scenario with its defaults (plus ``extra`` options) and ``--seed seed``; the row of figures
    it produced."""
    run_name = f"results-seed{seed}"
    # Each seed's checkpoints and GIFs apart from the other seeds'.
    models, frames = runs_dir / "models" / run_name, runs_dir / "frames" / run_name
    # A re-run replaces the last one: TensorBoard would read a stale events file beside the new one as one
    # run (its curves interleaved), a stale best.pt would outlive a run that never beat it, and old GIFs
    # would sit among the new.
    for stale in (runs_dir / name / run_name, models / name, frames / name):
        shutil.rmtree(stale, ignore_errors=True)
    command = [sys.executable, "-P", "-m", "doom_a3c", "train", "--scenario", name, "--run-name", run_name,
               "--runs-dir", str(runs_dir), "--models-dir", str(models), "--frames-dir", str(frames), *extra,
               "--seed", str(seed)]
    print(f"== {name}: python {' '.join(command[2:])}", flush=True)
    env = dict(os.environ)
    if IN_CHECKOUT:  # this checkout's package, not another copy (an installed one is found as it is here)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in process.stdout:  # shown as it comes: a run takes minutes to an hour
        print(line, end="", flush=True)
        lines.append(line)
    if process.wait() != 0:
        raise RuntimeError(f"{name}: the training exited with code {process.returncode}")
    return read_run(name, runs_dir / name / run_name, models / name, "".join(lines), extra)


def read_run(name: str, run_dir: Path, model_dir: Path, output: str,
             extra: tuple[str, ...] | list[str] = ()) -> dict:
    """The figures of one finished run, from its files (and its printed stop line)."""
    from doom_a3c.checkpoint import load_checkpoint

    config = json.loads((run_dir / "config.json").read_text())
    counters = load_checkpoint(model_dir / "latest.pt")["counters"]
    best_checkpoint = load_checkpoint(model_dir / "best.pt") if (model_dir / "best.pt").is_file() else {}
    best = best_checkpoint.get("evaluation", {})
    stopped = re.search(r"stopped \(([^)]*)\)", output)
    reason = stopped.group(1) if stopped else "unknown"
    final = {key: _last(run_dir, f"eval/final_{key}") for key in ("mean", "std")}
    _, baseline = scalars(run_dir, "eval/random_baseline")
    frames, seconds = int(counters["frames"]), float(counters["seconds"])
    return {
        "scenario": name,
        "seed": int(config["train"]["seed"]),
        "target": float(config["train"]["target_reward"]),
        "eval_mode": config["train"].get("eval_mode", "greedy"),
        # Stopped by a confirmed evaluation, or a final 100-episode evaluation at the budget that reaches it.
        "reached": reason.startswith("target") or final["mean"] >= float(config["train"]["target_reward"]),
        "stop_reason": reason,
        "frames": frames,
        "minutes": seconds / 60,
        # A run stopped by its target: best.pt holds the weights that reached it, a little before the run's
        # own end (the workers kept training while the evaluation was confirmed).
        "target_frames": int(best_checkpoint["counters"]["frames"]) if reason.startswith("target") else None,
        "target_minutes": (float(best_checkpoint["counters"]["seconds"]) / 60 if reason.startswith("target")
                           else None),
        "fps": frames / seconds if seconds else 0.0,
        "final_mean": final["mean"],
        "final_std": final["std"],
        "best_eval": float(best.get("mean", math.nan)),
        "best_eval_episodes": int(best.get("episodes", 0)),
        "random_mean": float(baseline[-1]) if len(baseline) else math.nan,
        "options": " ".join(extra),
        "run_dir": str(run_dir),
        "curves": read_curves(run_dir),
    }


def read_curves(run_dir: Path, points: int = 300) -> dict:
    """The run's curves, thinned to about ``points`` each, kept in the JSON so the plot can be redrawn
    from a fresh clone (run directories are not in git): the training mean of the last 100 episodes,
    every evaluation, and frames against wall-clock minutes."""
    steps, rewards = scalars(run_dir, "charts/episode_reward")
    eval_steps, eval_means = scalars(run_dir, "eval/mean_reward")
    marks, _, wall = scalars(run_dir, "charts/fps", wall_time=True)

    def thin(xs, ys) -> list[list[float]]:
        keep = np.unique(np.linspace(0, len(xs) - 1, min(len(xs), points)).astype(int)) if len(xs) else []
        return [[float(xs[i]), round(float(ys[i]), 4)] for i in keep]

    return {"training": thin(steps, smooth(rewards, 100)), "evaluation": thin(eval_steps, eval_means),
            "minutes": thin(marks, (wall - wall[0]) / 60 if len(wall) else wall)}


def _last(run_dir: Path, tag: str) -> float:
    _, values = scalars(run_dir, tag)
    return float(values[-1]) if len(values) else math.nan


def _digits(row: dict) -> int:
    """Decimals to show a row's rewards with: two where they are fractions of 1 (my_way_home)."""
    return reward_digits(row["target"])


def results_table(rows: list[dict]) -> str:
    """The Markdown table of ``rows``, one line a run."""
    lines = ["| scenario | seed | target | reached | final evaluation (100 episodes) | best evaluation (`best.pt`, "
             "episodes) | frames | minutes | frames/s | random agent |",
             "|---|---:|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        reached = "**yes**" if r["reached"] else f"no ({r['stop_reason']})"
        options = f" `{r['options']}`" if r.get("options") else ""
        d = _digits(r)
        lines.append(f"| {r['scenario']}{options} | {r.get('seed', 1)} | {r['target']:g} | {reached} | "
                     f"{r['final_mean']:.{d}f} ± {r['final_std']:.{d}f} ({r['eval_mode']}) | "
                     f"{r.get('best_eval', math.nan):.{d}f} ({r.get('best_eval_episodes', 0)}) | "
                     f"{r['frames'] / 1e6:.2f}M | {r['minutes']:.1f} | {r['fps']:,.0f} | {r['random_mean']:.{d}f} |")
    return "\n".join(lines)


def seeds_table(rows: list[dict]) -> str:
    """One line a scenario: on how many of its seeds the target was reached (a scenario counts as reached
    only when all of them did), and the frames and minutes each seed took. A run with options of its own (a
    cap, or the settings of an earlier preset) is shown but not counted: the count is the preset's."""
    lines = ["| scenario | target | seeds | reached on | frames (minutes) to the target, each seed |",
             "|---|---:|---:|---|---|"]
    for name, runs in _by_scenario(rows).items():
        hits = sum(r["reached"] and not r.get("options") for r in runs)
        verdict = f"**{hits} of {len(runs)}**" if hits == len(runs) else f"{hits} of {len(runs)}"
        each = ", ".join(f"seed {r.get('seed', 1)}: {_to_target(r)}"
                         + (f" with `{r['options']}`, not counted" if r.get("options") else "") for r in runs)
        lines.append(f"| {name} | {runs[0]['target']:g} | {len(runs)} | {verdict} | {each} |")
    return "\n".join(lines)


def _to_target(row: dict) -> str:
    """Frames (minutes) of the weights that reached the target, or the run's own where the stop line did not
    say (a budget's final evaluation that reached it, or a row from before they were kept)."""
    if not row["reached"]:
        return "not reached"
    frames, minutes = row.get("target_frames") or row["frames"], row.get("target_minutes") or row["minutes"]
    return f"{frames / 1e6:.2f}M ({minutes:.1f})"


def _by_scenario(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for r in sorted(rows, key=_key):
        grouped.setdefault(r["scenario"], []).append(r)
    return grouped


def _key(row: dict) -> tuple[str, int]:
    return row["scenario"], int(row.get("seed", 1))  # rows from before seeds were recorded ran seed 1


def plot_curves(rows: list[dict], out: Path) -> None:
    """One panel per scenario: each seed's evaluation mean and training mean (last 100 episodes) against
    frames, with the first seed's minutes on the top axis, the random agent and the target as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = _by_scenario(rows)
    columns = min(len(grouped), 3)
    lines = -(-len(grouped) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(5.2 * columns, 3.9 * lines), squeeze=False)
    for axis in axes.flat[len(grouped):]:
        axis.set_visible(False)
    for axis, runs in zip(axes.flat, grouped.values()):
        for k, row in enumerate(runs):
            curves = row.get("curves") or (read_curves(Path(row["run_dir"])) if Path(row["run_dir"]).is_dir()
                                           else None)
            if curves is None:
                axis.text(0.5, 0.5, "curve not kept\n(run before the JSON stored curves)", ha="center",
                          va="center", transform=axis.transAxes, color="gray")
                continue
            seed = f"seed {row.get('seed', 1)}: " if len(runs) > 1 else ""
            style = "-" if k == 0 else ":"
            if curves["training"]:
                axis.plot(*zip(*curves["training"]), style, color="tab:blue",
                          label=f"{seed}training episodes (mean of 100)")
            if curves["evaluation"]:
                axis.plot(*zip(*curves["evaluation"]), style, color="tab:orange",
                          label=f"{seed}evaluation ({row['eval_mode']})")
            if k == 0 and len(curves["minutes"]) > 1 and curves["minutes"][-1][0] > curves["minutes"][0][0]:
                marks, minutes = (np.array(c) for c in zip(*curves["minutes"]))
                top = axis.secondary_xaxis("top", functions=(lambda f, s=marks, m=minutes: np.interp(f, s, m),
                                                             lambda m, s=marks, mm=minutes: np.interp(m, mm, s)))
                top.set_xlabel("minutes" + (f" (seed {row.get('seed', 1)})" if len(runs) > 1 else ""))
        first = runs[0]
        axis.axhline(first["random_mean"], color="gray", linestyle="--", label="random agent")
        axis.axhline(first["target"], color="green", linestyle="--", label="target")
        d = _digits(first)
        finals = " / ".join(f"{r['final_mean']:.{d}f}" for r in runs)
        frames = " / ".join(f"{r['frames'] / 1e6:.1f}" for r in runs)
        axis.set_title(f"{first['scenario']}: {finals} after {frames}M frames", fontsize=10)
        axis.set_xlabel("frames")
        axis.grid(alpha=0.3)
    fullest = max(axes.flat[:len(grouped)], key=lambda a: len(a.get_legend_handles_labels()[1]))
    fullest.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


SIDE_BY_SIDE = "sample_factory.json"  # scripts/vs_sample_factory.py's rows, beside this file's


def side_by_side(rows: list[dict], store: Path) -> str:
    """The section comparing Sample Factory's runs (``store``, written by ``scripts/vs_sample_factory.py``)
    with ours of the same scenario: training minutes, frames, frames/s and the 100-episode evaluation."""
    if not store.is_file():
        return ""
    lines = ["", "## Side by side with Sample Factory", "",
             "The same 2 cores, one run after the other: Sample Factory 2.1.1's APPO with its own environment "
             "definitions (`python -m sf_examples.vizdoom.train_vizdoom --env=ENV --algo=APPO --device=cpu "
             "--num_workers=2 --num_envs_per_worker=4`, stopped with Ctrl-C after at least as many minutes as our "
             "runs took, since its own `--train_for_seconds` never stops it; made and evaluated by "
             "`python scripts/vs_sample_factory.py`); its minutes are its main loop's. Our runs stopped at their "
             "target or their frame budget. 100 episodes each, the stock game's raw reward.", "",
             "| scenario | trainer | seed | minutes | frames | frames/s | evaluation (100 episodes) |",
             "|---|---|---:|---:|---:|---:|---|"]
    ours = _by_scenario(rows)
    for sf in json.loads(store.read_text()):
        name = sf["env"].removeprefix("doom_")
        for r in ours.get(name, []):
            lines.append(f"| {name} | doom_a3c (this) | {r.get('seed', 1)} | {r['minutes']:.1f} | "
                         f"{r['frames'] / 1e6:.2f}M | {r['fps']:,.0f} | {r['final_mean']:.1f} ± {r['final_std']:.1f} "
                         f"({r['eval_mode']}) |")
        lines.append(f"| {name} | Sample Factory 2.1.1 APPO | {sf['seed']} | {sf['minutes']:.1f} | "
                     f"{sf['frames'] / 1e6:.2f}M | {sf['frames'] / (sf['minutes'] * 60):,.0f} | "
                     f"{sf['sampled']['mean']:.1f} ± {sf['sampled']['std']:.1f} (sampled), "
                     f"{sf['greedy']['mean']:.1f} ± {sf['greedy']['std']:.1f} (greedy) |")
    return "\n".join(lines) + "\n"


def write_results(rows: list[dict], out_dir: Path) -> None:
    """Merge ``rows`` into ``out_dir/doom_results.json`` (one row a scenario and seed) and rewrite the tables
    and the plot from all rows."""
    store = out_dir / "doom_results.json"
    known = {_key(r): r for r in json.loads(store.read_text())} if store.is_file() else {}
    known.update({_key(r): r for r in rows})
    ordered = sorted(known.values(), key=_key)
    out_dir.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(ordered, indent=2) + "\n")
    (out_dir / "doom_results.md").write_text(
        "# ViZDoom scenarios on two cores\n\nEach row: `python scripts/train_doom.py --scenario NAME --seed S` "
        "with the scenario's own defaults, stopped by its target or its budget, or by the cap shown beside its "
        "name; the final evaluation is 100 episodes in the scenario's declared mode, the best one the highest "
        "periodic evaluation during training (20 episodes, or 100 where one reached the target and was "
        "confirmed), the snapshot `best.pt` holds; rewards are the game's own (raw). "
        "Minutes and frames/s cover the whole training time, evaluations included, on a 2-core machine. "
        "`python scripts/doom_results.py NAME --seeds 2` trains seeds 1 and 1001 one after the other; a "
        "scenario counts as reached only where every seed reached its target.\n\n"
        + seeds_table(ordered) + "\n\n" + results_table(ordered) + "\n\n![curves](doom_curves.png)\n"
        + side_by_side(ordered, out_dir / SIDE_BY_SIDE))
    if ordered:
        plot_curves(ordered, out_dir / "doom_curves.png")


USAGE = """Train ViZDoom scenarios with their own defaults, one after the other, and publish what they reached:

    %(prog)s                            # every scenario but basic (hours on 2 cores)
    %(prog)s defend_the_center take_cover
    %(prog)s health_gathering --seeds 2    # seeds 1 and 1001, one row each
    %(prog)s --plot-only                # rewrite the table and plot from the saved rows

writes docs/doom_results.md (the table), docs/doom_results.json (its figures) and docs/doom_curves.png.
"""


def main(argv: list[str] | None = None, prog: str = "doom_results.py") -> int:
    """``doom_results.py`` (``doom-a3c results``): train the scenarios, write the table and plot."""
    from doom_a3c.envs import ScenarioError, known_scenarios, load_scenario
    from doom_a3c.seeds import SEED_STRIDE

    parser = argparse.ArgumentParser(prog=prog, description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", help="scenarios to train (default: every shipped one but basic)")
    parser.add_argument("--max-frames", type=int, default=None, help="cap each run's frames (default: its own)")
    parser.add_argument("--max-minutes", type=float, default=None, help="cap each run's minutes (default: its own)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of each run (default: its own, the number of CPU cores)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train each scenario this many times, seeds --seed, --seed + 1000, ... [default: 1]")
    parser.add_argument("--seed", type=int, default=1, help="the first seed [default: 1]")
    parser.add_argument("--out-dir", default="docs", help="where the table, figures and plot go [default: docs]")
    parser.add_argument("--runs-dir", default="runs/results", help="the runs' TensorBoard logs and checkpoints")
    parser.add_argument("--plot-only", action="store_true", help="train nothing: rewrite from the saved rows")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("matplotlib") is None:  # found now, not after hours of training
        print(f"{prog}: error: the curves need matplotlib: pip install 'matplotlib>=3.8' (the [plot] extra)",
              file=sys.stderr)
        return 2
    names = args.scenarios or [n for n in known_scenarios() if n != "basic"]
    try:
        for name in names:
            load_scenario(name)
        if args.seeds < 1:
            raise ScenarioError(f"--seeds must be at least 1, got {args.seeds}")
    except ScenarioError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    extra = []
    if args.max_frames is not None:
        extra += ["--max-frames", str(args.max_frames)]
    if args.max_minutes is not None:
        extra += ["--max-minutes", str(args.max_minutes)]
    if args.workers is not None:
        extra += ["--workers", str(args.workers)]
    rows = []
    if not args.plot_only:
        for name in names:
            for seed in range(args.seed, args.seed + SEED_STRIDE * args.seeds, SEED_STRIDE):
                try:
                    rows.append(run_scenario(name, Path(args.runs_dir), extra, seed))
                except RuntimeError as err:
                    print(f"{prog}: {err}", file=sys.stderr)
                    return 1
                write_results(rows, Path(args.out_dir))  # after each run: an interrupted series keeps its rows
    write_results(rows, Path(args.out_dir))
    print(f"written: {Path(args.out_dir) / 'doom_results.md'}, {Path(args.out_dir) / 'doom_curves.png'}")
    return 0
