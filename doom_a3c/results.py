"""The Doom results table: train each scenario with its own defaults, one after the other, then write
``docs/doom_results.md`` (the table), ``docs/doom_results.json`` (the figures behind it) and
``docs/doom_curves.png`` (each scenario's evaluation and training curves against frames and minutes).

Each run is a real ``scripts/train_doom.py`` process, so a row is exactly what a user gets from
``python scripts/train_doom.py --scenario NAME``; the figures are read back from the run's checkpoint,
TensorBoard events and ``config.json``. A scenario re-run replaces its own row and keeps the others.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from doom_a3c.curves import scalars, smooth

ROOT = Path(__file__).resolve().parents[1]


def run_scenario(name: str, runs_dir: Path, extra: list[str]) -> dict:
    """Train one scenario with its defaults (plus ``extra`` options); the row of figures it produced."""
    run_name = "results"
    models, frames = runs_dir / "models", runs_dir / "frames"
    # A re-run replaces the last one: TensorBoard would read a stale events file beside the new one as one
    # run (its curves interleaved), a stale best.pt would outlive a run that never beat it, and old GIFs
    # would sit among the new.
    for stale in (runs_dir / name / run_name, models / name, frames / name):
        shutil.rmtree(stale, ignore_errors=True)
    command = [sys.executable, str(ROOT / "scripts" / "train_doom.py"), "--scenario", name, "--run-name", run_name,
               "--runs-dir", str(runs_dir), "--models-dir", str(models), "--frames-dir", str(frames), *extra]
    print(f"== {name}: {' '.join(command[2:])}", flush=True)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:  # shown as it comes: a run takes minutes to an hour
        print(line, end="", flush=True)
        lines.append(line)
    if process.wait() != 0:
        raise RuntimeError(f"{name}: train_doom.py exited with code {process.returncode}")
    return read_run(name, runs_dir / name / run_name, models / name, "".join(lines), extra)


def read_run(name: str, run_dir: Path, model_dir: Path, output: str,
             extra: tuple[str, ...] | list[str] = ()) -> dict:
    """The figures of one finished run, from its files (and its printed stop line)."""
    from doom_a3c.checkpoint import load_checkpoint

    config = json.loads((run_dir / "config.json").read_text())
    counters = load_checkpoint(model_dir / "latest.pt")["counters"]
    best = load_checkpoint(model_dir / "best.pt")["evaluation"] if (model_dir / "best.pt").is_file() else {}
    stopped = re.search(r"stopped \(([^)]*)\)", output)
    reason = stopped.group(1) if stopped else "unknown"
    final = {key: _last(run_dir, f"eval/final_{key}") for key in ("mean", "std")}
    _, baseline = scalars(run_dir, "eval/random_baseline")
    frames, seconds = int(counters["frames"]), float(counters["seconds"])
    return {
        "scenario": name,
        "target": float(config["train"]["target_reward"]),
        "eval_mode": config["train"].get("eval_mode", "greedy"),
        # Stopped by a confirmed evaluation, or a final 100-episode evaluation at the budget that reaches it.
        "reached": reason.startswith("target") or final["mean"] >= float(config["train"]["target_reward"]),
        "stop_reason": reason,
        "frames": frames,
        "minutes": seconds / 60,
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
    return 2 if abs(row["target"]) < 10 else 1


def results_table(rows: list[dict]) -> str:
    """The Markdown table of ``rows``."""
    lines = ["| scenario | target | reached | final evaluation (100 episodes) | best evaluation (`best.pt`, episodes) "
             "| frames | minutes | frames/s | random agent |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        reached = "**yes**" if r["reached"] else f"no ({r['stop_reason']})"
        options = f" `{r['options']}`" if r.get("options") else ""
        digits = _digits(r)
        lines.append(f"| {r['scenario']}{options} | {r['target']:g} | {reached} | {r['final_mean']:.{digits}f} ± "
                     f"{r['final_std']:.{digits}f} ({r['eval_mode']}) | {r.get('best_eval', math.nan):.{digits}f} "
                     f"({r.get('best_eval_episodes', 0)}) | "
                     f"{r['frames'] / 1e6:.2f}M | {r['minutes']:.1f} | {r['fps']:,.0f} | {r['random_mean']:.{digits}f} |")
    return "\n".join(lines)


def plot_curves(rows: list[dict], out: Path) -> None:
    """One panel per scenario: evaluation mean and training mean (last 100 episodes) against frames, with
    minutes on the top axis, the random agent and the target as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(len(rows), 3)
    lines = -(-len(rows) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(5.2 * columns, 3.9 * lines), squeeze=False)
    for axis in axes.flat[len(rows):]:
        axis.set_visible(False)
    for axis, row in zip(axes.flat, rows):
        curves = row.get("curves") or (read_curves(Path(row["run_dir"])) if Path(row["run_dir"]).is_dir() else None)
        if curves is None:
            axis.text(0.5, 0.5, "curve not kept\n(run before the JSON stored curves)", ha="center", va="center",
                      transform=axis.transAxes, color="gray")
            curves = {"training": [], "evaluation": [], "minutes": []}
        if curves["training"]:
            axis.plot(*zip(*curves["training"]), label="training episodes (mean of 100)", color="tab:blue")
        if curves["evaluation"]:
            axis.plot(*zip(*curves["evaluation"]), label=f"evaluation ({row['eval_mode']})", color="tab:orange")
        axis.axhline(row["random_mean"], color="gray", linestyle="--", label="random agent")
        axis.axhline(row["target"], color="green", linestyle="--", label="target")
        digits = _digits(row)
        axis.set_title(f"{row['scenario']}: {row['final_mean']:.{digits}f} after {row['frames'] / 1e6:.2f}M frames, "
                       f"{row['minutes']:.0f} min")
        axis.set_xlabel("frames")
        axis.grid(alpha=0.3)
        if len(curves["minutes"]) > 1 and curves["minutes"][-1][0] > curves["minutes"][0][0]:
            marks, minutes = (np.array(c) for c in zip(*curves["minutes"]))
            top = axis.secondary_xaxis("top", functions=(lambda f, s=marks, m=minutes: np.interp(f, s, m),
                                                         lambda m, s=marks, mm=minutes: np.interp(m, mm, s)))
            top.set_xlabel("minutes")
    fullest = max(axes.flat[:len(rows)], key=lambda a: len(a.get_legend_handles_labels()[1]))
    fullest.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def write_results(rows: list[dict], out_dir: Path) -> None:
    """Merge ``rows`` into ``out_dir/doom_results.json`` and rewrite the table and the plot from all rows."""
    store = out_dir / "doom_results.json"
    known = {r["scenario"]: r for r in json.loads(store.read_text())} if store.is_file() else {}
    known.update({r["scenario"]: r for r in rows})
    ordered = sorted(known.values(), key=lambda r: r["scenario"])
    out_dir.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(ordered, indent=2) + "\n")
    (out_dir / "doom_results.md").write_text(
        "# ViZDoom scenarios on two cores\n\nEach row: `python scripts/train_doom.py --scenario NAME` with the "
        "scenario's own defaults, stopped by its target or its budget, or by the cap shown beside its name; the "
        "final evaluation is 100 episodes in the scenario's declared mode, the best one the highest periodic "
        "evaluation during training (20 episodes, or 100 where one reached the target and was confirmed), the "
        "snapshot `best.pt` holds; rewards are the game's own (raw). "
        "Minutes and frames/s cover the whole training time, evaluations included, on a 2-core machine.\n\n"
        + results_table(ordered) + "\n\n![curves](doom_curves.png)\n")
    if ordered:
        plot_curves(ordered, out_dir / "doom_curves.png")
