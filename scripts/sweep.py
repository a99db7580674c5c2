"""Run a preset grid of SFT configurations and print one table (dev accuracy, valid JSON, time, cost), then score the
base model 0-shot and k-shot for a comparison summary, and overlay the configurations' dev curves.

python scripts/sweep.py configs/sweeps/mistral-7b-v0.3.yaml              # runs each configuration here
python scripts/sweep.py configs/sweeps/mistral-7b-v0.3.yaml --print_only # the SFT + eval commands, e.g. for jobs
"""

import argparse
import shlex

from fine_tune.cli import OneLineArgumentParser, did_you_mean, parse_only_exit, run_main
from fine_tune.errors import RecipeError
from fine_tune.hub.sweep import (
    OVERLAY_FILE,
    SUMMARY_STEM,
    baseline_command,
    comparison_summary,
    dev_curves,
    eval_command,
    load_sweep,
    run_baseline,
    run_configuration,
    sft_command,
    summary_markdown,
    sweep_table,
)
from fine_tune.io import atomic_write_json, atomic_write_text
from fine_tune.train.curves import write_overlaid_dev_curves


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="sweep file (YAML)")
    parser.add_argument("--output_dir", help="replaces the sweep file's output_dir")
    parser.add_argument("--only", nargs="+", help="run these configurations only")
    parser.add_argument("--print_only", action="store_true", help="print the commands instead of running them")
    args = parser.parse_args(argv)
    sweep = load_sweep(args.sweep, args.output_dir)
    names = args.only or list(sweep.configurations)
    for name in names:
        if name not in sweep.configurations:
            raise RecipeError(
                f"--only: no configuration {name!r} in {args.sweep}{did_you_mean(name, sweep.configurations)}"
            )
    parse_only_exit("sweep.py")
    if args.print_only:
        for name in names:
            for command in (sft_command(sweep, name), eval_command(sweep, name)):
                print("python " + shlex.join(command))
        print("python " + shlex.join(baseline_command(sweep)))
        return
    rows = []
    for name in names:
        rows.append(run_configuration(sweep, name))
        print(f"{name}: {rows[-1]['status']}", flush=True)
    table = sweep_table(sweep, rows)
    atomic_write_text(f"{sweep.output_dir}/sweep_table.md", table + "\n")
    print(table)
    baseline = run_baseline(sweep)
    summary = comparison_summary(sweep, rows, baseline)
    atomic_write_json(f"{sweep.output_dir}/{SUMMARY_STEM}.json", summary)
    atomic_write_text(f"{sweep.output_dir}/{SUMMARY_STEM}.md", summary_markdown(summary) + "\n")
    print(summary_markdown(summary))
    overlay = write_overlaid_dev_curves(dev_curves(sweep, names), f"{sweep.output_dir}/{OVERLAY_FILE}")
    print(f"dev curves: {overlay or 'none logged (dev_size 0)'}")


if __name__ == "__main__":
    run_main(main)
