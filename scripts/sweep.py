"""Run a preset grid of SFT configurations and print one table (dev accuracy, valid JSON, time, cost).

python scripts/sweep.py configs/sweeps/mistral-7b-v0.3.yaml              # runs each configuration here
python scripts/sweep.py configs/sweeps/mistral-7b-v0.3.yaml --print_only # the SFT + eval commands, e.g. for jobs
"""

import argparse
import shlex

from fine_tune.cli import run_main
from fine_tune.hub.sweep import eval_command, load_sweep, run_configuration, sft_command, sweep_table
from fine_tune.io import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="sweep file (YAML)")
    parser.add_argument("--output_dir", help="replaces the sweep file's output_dir")
    parser.add_argument("--only", nargs="+", help="run these configurations only")
    parser.add_argument("--print_only", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args()
    sweep = load_sweep(args.sweep, args.output_dir)
    names = args.only or list(sweep.configurations)
    if args.print_only:
        for name in names:
            for command in (sft_command(sweep, name), eval_command(sweep, name)):
                print("python " + shlex.join(command))
        return
    rows = []
    for name in names:
        rows.append(run_configuration(sweep, name))
        print(f"{name}: {rows[-1]['status']}", flush=True)
    table = sweep_table(sweep, rows)
    atomic_write_text(f"{sweep.output_dir}/sweep_table.md", table + "\n")
    print(table)


if __name__ == "__main__":
    run_main(main)
