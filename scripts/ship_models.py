#!/usr/bin/env python
"""Make the shipped models (models/pretrained/) from trained best.pt files:

    python scripts/ship_models.py                       # every scenario or game with a models/<name>/best.pt
    python scripts/ship_models.py basic take_cover --models-dir runs/results/models

Each best.pt is played for 100 episodes exactly as `play.py --episodes 100` plays them; a model whose mean
reaches its scenario's target is written as a weights-only checkpoint (under 3 MB) to
models/pretrained/<name>.pt (with --below-target, one short of it too, marked so), and
models/pretrained/README.md lists what is shipped and at what score.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from doom_a3c.checkpoint import CheckpointError  # noqa: E402
from doom_a3c.envs import EngineError, ScenarioError, load_env_spec  # noqa: E402
from doom_a3c.pretrained import EPISODES, PRETRAINED_DIR, ship, table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="scenarios or games (default: every one with a best.pt)")
    parser.add_argument("--models-dir", default="models", help="where <name>/best.pt are read from")
    parser.add_argument("--out-dir", default=str(PRETRAINED_DIR),
                        help="where the shipped models and their README go [default: models/pretrained]")
    parser.add_argument("--episodes", type=int, default=EPISODES, help="episodes the score is measured over")
    parser.add_argument("--below-target", action="store_true",
                        help="ship a model short of its target too, marked as such (for a scenario no run reached)")
    args = parser.parse_args(argv)
    models = Path(args.models_dir)
    names = args.names or sorted(p.parent.name for p in models.glob("*/best.pt") if p.parent.name != "pretrained")
    if not names:
        print(f"ship_models.py: error: no {models}/<name>/best.pt to ship; train one first", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    failed = False
    try:
        for name in names:
            try:
                spec = load_env_spec(name)
                _, said = ship(spec, models / spec.name / "best.pt", Path(args.out_dir), args.episodes,
                               below_target=args.below_target)
            except (ScenarioError, CheckpointError, EngineError) as err:
                print(f"ship_models.py: error: {name}: {err}", file=sys.stderr)
                failed = True
                continue
            print(said, flush=True)
    finally:  # the table always describes what is in the folder, whatever stopped the loop
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "README.md").write_text(table(out))
        print(f"wrote {out / 'README.md'}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
