"""Measure training and generation throughput, and project the real recipes onto a T4.

python scripts/benchmark.py [--gpu | --full | --quick | --smoke] [--device cpu|cuda|auto] [--json] [--out-dir DIR]
python scripts/benchmark.py --cost-table     # the job cost table of docs/jobs.md, from the recipes and the figures

`--device cuda` runs the `gpu` mode by default: SFT tokens/s and MFU, GRPO step time (with and without vLLM) and eval
samples/s (HF generate, and vLLM when importable) on a random-init model of Qwen3-0.6B's exact shape with the real
recipes, inside a 7 minute limit (each section has its cap); it writes eval_results/benchmarks/<gpu family>.json,
whose `job_figures` then drive the job timeouts of the flavors on that GPU. On the CPU the default is the full mode
(about ten minutes on 2 cores); --quick takes a few minutes, --smoke well under one (CI). Files:
<device>[-<mode>].json and .md, under outputs/benchmarks/ (untracked); with --write under the tracked
eval_results/benchmarks/, which the README's tables and the job timeouts read. --json also prints the JSON on stdout
(all else: stderr).
"""

import argparse
import contextlib
import sys
from pathlib import Path

import fine_tune  # noqa: F401 (first: its import puts the Hub bounds in force, fine_tune/bounds.py)
from benchmarks.bench_report import DEFAULT_OUT_DIR, main_json, write_outputs
from benchmarks.projection import DEFAULT_T4_MFU
from benchmarks.runner import DEFAULT_SHARED_DIR, SECTIONS, run_benchmark
from benchmarks.settings import MODES, Recipe
from fine_tune.cli import OneLineArgumentParser, parse_only_exit, run_main
from fine_tune.constants import PROJECT_ROOT
from fine_tune.errors import RecipeError


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    for mode in MODES:
        size.add_argument(f"--{mode}", action="store_const", dest="mode", const=mode, help=f"the {mode} mode")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--json", action="store_true", help="also print the result JSON on stdout")
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"write the results into the tracked {DEFAULT_OUT_DIR.relative_to(PROJECT_ROOT)}/ (read by the README, "
        "the job timeouts); without it they go to outputs/benchmarks/",
    )
    parser.add_argument("--out-dir", type=Path, help="where the JSON and markdown go (instead of either default)")
    parser.add_argument("--no-write", action="store_true", help="write no files")
    parser.add_argument("--shared-dir", type=Path, default=DEFAULT_SHARED_DIR, help="../shared (real data, tokenizer)")
    parser.add_argument("--t4-mfu", type=float, default=DEFAULT_T4_MFU, help="assumed T4 MFU for the projection")
    parser.add_argument("--time-limit", type=float, help="seconds for the whole run (default: the mode's)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on shared cores, OpenMP barriers stall small ops when others run)",
    )
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--cost-table", action="store_true", help="print the job cost table (markdown) and exit")
    args = parser.parse_args(argv)
    args.out_dir = args.out_dir or (DEFAULT_OUT_DIR if args.write else UNTRACKED_OUT_DIR)
    return args


UNTRACKED_OUT_DIR = PROJECT_ROOT / "outputs" / "benchmarks"


def main(argv=None) -> None:
    args = parse_args(argv)
    parse_only_exit("benchmark.py")
    if args.cost_table:
        from fine_tune.hub.jobs.estimate import cost_table

        print(cost_table({phase: Recipe.load(phase).values for phase in ("sft", "grpo", "eval")}))
        return
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise RecipeError(f"--sections: unknown section(s) {unknown}; choose from {SECTIONS}")
    import torch

    torch.set_num_threads(max(args.threads, 1))
    # Libraries print progress and metrics on stdout: keep it for the JSON alone
    with contextlib.redirect_stdout(sys.stderr):
        result = run_benchmark(
            mode=args.mode,
            device=args.device,
            shared_dir=args.shared_dir,
            t4_mfu=args.t4_mfu,
            sections=sections,
            argv=["scripts/benchmark.py", *(sys.argv[1:] if argv is None else argv)],
            time_limit_s=args.time_limit,
        )
        if not args.no_write:
            for kind, path in write_outputs(result, args.out_dir).items():
                print(f"{kind}: {path}", file=sys.stderr)
    if args.json:
        print(main_json(result))


if __name__ == "__main__":
    run_main(main)
