#!/usr/bin/env python
"""Train one preset over several seeds and print the frames and minutes each needed to its target:

    python scripts/seeds.py --scenario basic --seeds 5
    python scripts/seeds.py --env CartPole-v1 --seeds 3 --lr 1e-3     # any training option applies to every run

Seeds are --seed, --seed + 1000, ...; each run is a full training with its own TensorBoard run
(runs/<scenario>/<run name>-seed<N>). Ctrl-C stops the current run and prints what was measured.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from doom_a3c.config import add_config_arguments, config_from_args  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seeds.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds [default: 5]")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON instead of a table")
    add_config_arguments(parser, aliases={"scenario": ["--env"]})
    args = parser.parse_args(argv)
    if args.seeds < 1:
        print(f"seeds.py: error: --seeds must be at least 1, got {args.seeds}", file=sys.stderr)
        return 2
    from doom_a3c.backends import ClusterError
    from doom_a3c.checkpoint import CheckpointError
    from doom_a3c.envs import ScenarioError, load_env_spec
    from doom_a3c.seeds import format_seeds, run_seeds
    from doom_a3c.trainer import OutputError

    try:
        spec = load_env_spec(args.scenario or "basic")
        cfg = config_from_args(args, spec.train)
        cfg.scenario = spec.name
        rows = run_seeds(cfg, spec, args.seeds)
    except (ScenarioError, CheckpointError, OutputError, ClusterError, ValueError) as err:
        print(f"seeds.py: error: {err}", file=sys.stderr)
        return 2
    target = cfg.target_reward if cfg.target_reward == cfg.target_reward else spec.target_reward
    print(json.dumps(rows, indent=2) if args.json else format_seeds(rows, spec.name, target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
