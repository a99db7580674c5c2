"""Rounds: train the recipe's tracks in turn, evaluate the target task after each round, hand on the best round.

python scripts/run_rounds.py --config configs/rounds.yaml [--max_rounds 3] [--patience 2]
"""

import argparse

from fine_tune.cli import run_main
from fine_tune.train.rounds import ROUNDS_FILE, load_rounds_config, run_rounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="rounds recipe (YAML)")
    parser.add_argument("--max_rounds", type=int)
    parser.add_argument("--patience", type=int)
    parser.add_argument("--output_dir")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "config" and v is not None}
    config = load_rounds_config(args.config, overrides)
    summary = run_rounds(config)
    print(f"{config.output_dir}/{ROUNDS_FILE}: handed on round {summary['handed_on']} ({summary['stopped']})")


if __name__ == "__main__":
    run_main(main)
