#!/usr/bin/env python
"""Train ViZDoom scenarios with their own defaults, one after the other, and publish what they reached:

    python scripts/doom_results.py                            # every scenario but basic (hours on 2 cores)
    python scripts/doom_results.py defend_the_center take_cover
    python scripts/doom_results.py health_gathering --seeds 2    # seeds 1 and 1001, one row each
    python scripts/doom_results.py --plot-only                # rewrite the table and plot from the saved rows

writes docs/doom_results.md (the table), docs/doom_results.json (its figures) and docs/doom_curves.png.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from doom_a3c.envs import ScenarioError, known_scenarios, load_scenario  # noqa: E402
from doom_a3c.results import ROOT, run_scenario, write_results  # noqa: E402
from doom_a3c.seeds import SEED_STRIDE  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", help="scenarios to train (default: every shipped one but basic)")
    parser.add_argument("--max-frames", type=int, default=None, help="cap each run's frames (default: its own)")
    parser.add_argument("--max-minutes", type=float, default=None, help="cap each run's minutes (default: its own)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes of each run (default: its own, the number of CPU cores)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train each scenario this many times, seeds --seed, --seed + 1000, ... [default: 1]")
    parser.add_argument("--seed", type=int, default=1, help="the first seed [default: 1]")
    parser.add_argument("--out-dir", default=str(ROOT / "docs"), help="where the table, figures and plot go")
    parser.add_argument("--runs-dir", default="runs/results", help="the runs' TensorBoard logs and checkpoints")
    parser.add_argument("--plot-only", action="store_true", help="train nothing: rewrite from the saved rows")
    args = parser.parse_args(argv)
    names = args.scenarios or [n for n in known_scenarios() if n != "basic"]
    try:
        for name in names:
            load_scenario(name)
        if args.seeds < 1:
            raise ScenarioError(f"--seeds must be at least 1, got {args.seeds}")
    except ScenarioError as err:
        print(f"doom_results.py: error: {err}", file=sys.stderr)
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
                    print(f"doom_results.py: {err}", file=sys.stderr)
                    return 1
                write_results(rows, Path(args.out_dir))  # after each run: an interrupted series keeps its rows
    write_results(rows, Path(args.out_dir))
    print(f"written: {Path(args.out_dir) / 'doom_results.md'}, {Path(args.out_dir) / 'doom_curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
