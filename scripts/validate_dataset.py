"""Check a MedMCQA source before spending GPU money: row validity, duplicates, splits, token lengths.

Exit status 0 when the dataset can feed the requested splits, 2 otherwise (the reason is printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import datasets

from fine_tune.constants import DEFAULT_SPLIT_SEED, DEFAULT_SPLIT_SIZES, SPLIT_NAMES, TOKEN_ENV
from fine_tune.data.loading import load_medmcqa
from fine_tune.data.report import dataset_report
from fine_tune.data.validation import REASON_DESCRIPTIONS
from fine_tune.errors import DatasetError


def parse_sizes(text: str) -> dict[str, int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if len(sizes) != len(SPLIT_NAMES) or any(size < 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"expected {len(SPLIT_NAMES)} non-negative integers like 1000,500,200")
    return dict(zip(SPLIT_NAMES, sizes, strict=True))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", required=True, help="Hub dataset ID or local path (.jsonl/.json/.parquet/.csv/folder)"
    )
    parser.add_argument("--split", default="train", help="split to load from a Hub ID or saved DatasetDict")
    default_sizes = ",".join(str(DEFAULT_SPLIT_SIZES[name]) for name in SPLIT_NAMES)
    parser.add_argument(
        "--sizes", type=parse_sizes, default=DEFAULT_SPLIT_SIZES, help=f"sft,grpo,eval sizes ({default_sizes})"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SPLIT_SEED)
    parser.add_argument("--tokenizer", help="tokenizer ID or path, for token-length statistics")
    parser.add_argument("--token-rows", type=int, help="measure token lengths on the first N valid rows only")
    parser.add_argument("--token-env", default=TOKEN_ENV, help="environment variable holding the Hub token")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as error:  # any failure to load is reported, not traced
        raise DatasetError(f"could not load tokenizer {name!r}: {type(error).__name__}: {error}") from error


def format_report(report: dict[str, Any]) -> str:
    lines = [f"dataset: {report['source']}", f"rows: {report['rows']}   valid: {report['valid']}"]
    for kind, counts in (("invalid", report["invalid"]), ("flag", report["flags"])):
        for name, count in counts.items():
            examples = ", ".join(report["examples"].get(name, []))
            lines.append(f"  {kind} {name}: {count} ({REASON_DESCRIPTIONS[name]}); e.g. {examples}")
    dup = report["duplicates"]
    lines.append(f"duplicate content: {dup['rows']} rows in {dup['groups']} groups")
    lines.append("subjects: " + ", ".join(f"{name} {count}" for name, count in report["subjects"].items()))
    if report["usable"]:
        sizes = ", ".join(f"{name} {size}" for name, size in report["splits"].items())
        skipped = ", ".join(f"{name} {count}" for name, count in report["skipped"].items()) or "none"
        lines.append(f"splits: {sizes} (skipped: {skipped}); contamination: {report['contamination']}")
    for part, stats in report.get("token_lengths", {}).items():
        if part != "rows":
            lines.append(f"tokens {part}: " + ", ".join(f"{key} {value}" for key, value in stats.items()))
    lines.append("USABLE" if report["usable"] else f"NOT USABLE: {report['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    datasets.disable_progress_bars()
    try:
        dataset = load_medmcqa(args.dataset, args.split, args.token_env)
        tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
        report = dataset_report(
            dataset, args.sizes, args.seed, tokenizer=tokenizer, token_rows=args.token_rows, source=args.dataset
        )
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    return 0 if report["usable"] else 2


if __name__ == "__main__":
    sys.exit(main())
