"""Measure training and generation throughput, and project the real configs onto a T4.

python scripts/benchmark.py [--quick | --smoke] [--device cpu|cuda|auto] [--json] [--out-dir DIR]

Writes eval_results/benchmarks/<device>[-<mode>].json and .md (device, library versions, configs, figures); with
--json also prints that JSON object on stdout (everything else goes to stderr). --quick takes a few minutes on 2 CPU
cores, --smoke well under a minute of benchmarking (CI); the default full mode about ten minutes on 2 CPU cores.
The T4 projection is under t4_projection.<sft|grpo|eval>.projected_t4_seconds_per_step.
"""

import argparse
import contextlib
import logging
import sys
from pathlib import Path

import torch

from fine_tune.bench.benchmark import (
    DEFAULT_OUT_DIR,
    DEFAULT_SHARED_DIR,
    DEFAULT_T4_MFU,
    SECTIONS,
    main_json,
    run_benchmark,
    write_outputs,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", dest="mode", const="quick", help="a few minutes on 2 CPU cores")
    size.add_argument("--smoke", action="store_const", dest="mode", const="smoke", help="the smallest run (CI)")
    parser.set_defaults(mode="full")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--json", action="store_true", help="also print the result JSON on stdout")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR, help="where the JSON and markdown go")
    parser.add_argument("--no-write", action="store_true", help="write no files")
    parser.add_argument("--shared-dir", type=Path, default=DEFAULT_SHARED_DIR, help="../shared (real data, tokenizer)")
    parser.add_argument("--t4-mfu", type=float, default=DEFAULT_T4_MFU, help="assumed T4 MFU for the projection")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on shared cores, OpenMP barriers stall small ops when others run)",
    )
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO, stream=sys.stderr
    )
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        sys.exit(f"error: unknown section(s) {unknown}; choose from {SECTIONS}")
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
        )
        if not args.no_write:
            paths = write_outputs(result, args.out_dir)
            for kind, path in paths.items():
                print(f"{kind}: {path}", file=sys.stderr)
    if args.json:
        print(main_json(result))


if __name__ == "__main__":
    main()
