"""One preset over several seeds: the frames and minutes each run needs to its target, and their spread.

The onset of learning moves with the seed (basic: 1.0-2.1M frames on the same preset), so a change to a
preset is kept only when the median over seeds says so. Runs are sequential, each a full training with
its own TensorBoard run (``runs/<scenario>/<run name>-seed<N>``); a run that stops at a budget instead of
its target counts as "more than its frames" (the median is then at least that).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys

from doom_a3c.config import TrainConfig
from doom_a3c.summaries import reward_digits

SEED_STRIDE = 1000  # worker i of a run plays seed + i: runs' seeds far apart never share a worker's


def run_seeds(cfg: TrainConfig, spec, count: int, say=print) -> list[dict]:
    """``count`` trainings of ``cfg`` with seeds cfg.seed, cfg.seed + 1000, ...; one row per run. Stops
    early (with the rows so far) when a run is interrupted."""
    from doom_a3c.trainer import Trainer

    rows = []
    for k in range(count):
        seed = cfg.seed + SEED_STRIDE * k
        run_cfg = dataclasses.replace(cfg, seed=seed, run_name=f"{cfg.run_name or 'seeds'}-seed{seed}")
        say(f"== seed {seed} ({k + 1} of {count})")
        result = Trainer(run_cfg, spec).train()
        reached = result.stop_reason == "target"
        # To the target: the frames and minutes of the weights that reached it, not the run's last ones.
        rows.append({"seed": seed, "stop": result.stop_reason, "reached": reached,
                     "frames": result.target_frames if reached else result.frames,
                     "minutes": (result.target_seconds if reached else result.seconds) / 60,
                     "final_mean": result.final_eval.get("mean", math.nan)})
        if result.stop_reason in ("interrupted", "workers_failed"):
            break
    return rows


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def summarize_seeds(rows: list[dict]) -> dict:
    """Median and range of frames and minutes to the target; runs that missed it count as infinite."""
    to_target = [r["frames"] if r["reached"] else math.inf for r in rows]
    minutes = [r["minutes"] if r["reached"] else math.inf for r in rows]
    reached = [r for r in rows if r["reached"]]
    return {"runs": len(rows), "reached": len(reached),
            "median_frames": _median(to_target), "median_minutes": _median(minutes),
            "min_frames": min(to_target, default=math.nan), "max_frames": max(to_target, default=math.nan)}


def format_seeds(rows: list[dict], scenario: str, target: float) -> str:
    lines = [f"{scenario}, target {target:g}: {len(rows)} seeds", "",
             "| seed | ended by | frames | minutes | final evaluation |", "|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {'target' if r['reached'] else r['stop']} | {r['frames'] / 1e6:.2f}M | "
                     f"{r['minutes']:.1f} | {r['final_mean']:.{reward_digits(target)}f} |")
    s = summarize_seeds(rows)

    def frames(x: float) -> str:
        return "not reached" if math.isinf(x) else f"{x / 1e6:.2f}M"

    def minutes(x: float) -> str:
        return "not reached" if math.isinf(x) else f"{x:.1f}"

    lines += ["", f"target reached by {s['reached']} of {s['runs']}; frames to the target: median "
                  f"{frames(s['median_frames'])} (fewest {frames(s['min_frames'])}, most {frames(s['max_frames'])}); "
                  f"minutes: median {minutes(s['median_minutes'])}"]
    return "\n".join(lines)


USAGE = """Train one preset over several seeds and print the frames and minutes each needed to its target:
    %(prog)s --scenario basic --seeds 5
    %(prog)s --env CartPole-v1 --seeds 3 --lr 1e-3     # any training option applies to every run
Seeds are --seed, --seed + 1000, ...; each run is a full training with its own TensorBoard run
(runs/<scenario>/<run name>-seed<N>). Ctrl-C stops the current run and prints what was measured.
"""


def main(argv: list[str] | None = None, prog: str = "seeds.py") -> int:
    """``seeds.py`` (``doom-a3c seeds``): the table (or JSON) of one preset over seeds; exit 2 on bad input."""
    from doom_a3c.config import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser(prog=prog, description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds [default: 5]")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON instead of a table")
    add_config_arguments(parser, aliases={"scenario": ["--env"]})
    args = parser.parse_args(argv)
    if args.seeds < 1:
        print(f"{prog}: error: --seeds must be at least 1, got {args.seeds}", file=sys.stderr)
        return 2
    from doom_a3c.backends import ClusterError
    from doom_a3c.checkpoint import CheckpointError
    from doom_a3c.envs import ScenarioError, load_env_spec
    from doom_a3c.trainer import OutputError

    try:
        spec = load_env_spec(args.scenario or "basic")
        cfg = config_from_args(args, spec.train)
        cfg.scenario = spec.name
        rows = run_seeds(cfg, spec, args.seeds)
    except (ScenarioError, CheckpointError, OutputError, ClusterError, ValueError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    target = cfg.target_reward if cfg.target_reward == cfg.target_reward else spec.target_reward
    print(json.dumps(rows, indent=2) if args.json else format_seeds(rows, spec.name, target))
    return 0
