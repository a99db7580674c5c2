"""Train several SFT tracks round after round, scoring a target task after each round; keep every round, hand on the
best one that beats the start model and is not significantly worse than it (docs/rounds.md).

python scripts/rounds.py configs/rounds/demo-curriculum.yaml               # runs the rounds here
python scripts/rounds.py configs/rounds/demo-curriculum.yaml --print_only  # every command of a full run

Exit 0 with a round handed on, 3 when no round beat the start (nothing handed on), 1 when a phase failed.
"""

import argparse
import shlex
import sys

from fine_tune.cli import OneLineArgumentParser, parse_only_exit, run_main
from fine_tune.constants import EXIT_MODEL_FAILED, EXIT_NO_LEARNING_SIGNAL
from fine_tune.hub.rounds import ROUNDS_FILE, load_rounds, planned_commands, run_rounds


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rounds", help="rounds file (YAML)")
    parser.add_argument("--output_dir", help="replaces the rounds file's output_dir")
    parser.add_argument("--print_only", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args(argv)
    rounds = load_rounds(args.rounds, args.output_dir)
    parse_only_exit("rounds.py")
    if args.print_only:
        for command in planned_commands(rounds):
            print("python " + shlex.join(command))
        return
    summary = run_rounds(rounds)
    print(f"{rounds.output_dir}/{ROUNDS_FILE}: stopped ({summary['stopped']}), handed on: {summary['handed_on']}")
    if any(entry["status"] != "ok" for entry in summary["rounds"]) or "start" not in summary:
        sys.exit(EXIT_MODEL_FAILED)
    if summary["handed_on"] is None:
        print("no round beat the start model without a significant regression: nothing handed on", file=sys.stderr)
        sys.exit(EXIT_NO_LEARNING_SIGNAL)


if __name__ == "__main__":
    run_main(main)
