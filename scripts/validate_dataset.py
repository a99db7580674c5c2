"""Check a task's source before spending GPU money: row validity, duplicates, splits, token lengths.

python scripts/validate_dataset.py [--config configs/validate.yaml] [--task medqa | --task medqa:2,headqa:1]
    [--dataset_name PATH_OR_HUB_ID]
    [--sft_size 1000 --grpo_size 500 --eval_size 200 --split_seed 42] [--tokenizer ID_OR_PATH] [--json]

The data keys are the training recipes' (`SplitArguments`), read through the one recipe loader. Exit status 0 when
the dataset can feed the requested splits, 2 otherwise (the reason is printed; under --json as JSON too).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from fine_tune.cli import parse_only_exit, setup_logging
from fine_tune.constants import EXIT_BAD_INPUT
from fine_tune.errors import DatasetError, PipelineError
from fine_tune.recipes.loader import parse_recipe


def load_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    from fine_tune.hub_access import require_source

    require_source(name, "tokenizer")  # a Hub that cannot answer: one line in seconds, not minutes of retries
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception as error:  # any failure to load is reported, not traced
        raise DatasetError(f"could not load tokenizer {name!r}: {type(error).__name__}: {error}") from error
    if not tokenizer.chat_template:
        raise DatasetError(f"tokenizer {name!r} has no chat template: lengths are measured on chat-rendered text")
    return tokenizer


def format_report(report: dict[str, Any]) -> str:
    from fine_tune.data.normalise import REASON_DESCRIPTIONS as descriptions

    lines = [
        f"task: {report['task']} (letters {', '.join(report['letters'])})",
        f"dataset: {report['source']}",
        f"rows: {report['rows']}   valid: {report['valid']}",
    ]
    for kind, counts in (("invalid", report["invalid"]), ("flag", report["flags"])):
        for name, count in counts.items():
            examples = ", ".join(report["examples"].get(name, []))
            lines.append(f"  {kind} {name}: {count} ({descriptions[name]}); e.g. {examples}")
    for conflict in report["conflicts"]:
        pairs = ", ".join(f"{i} ({a})" for i, a in zip(conflict["ids"], conflict["answers"], strict=True))
        lines.append(f"  conflicting answers: {pairs}")
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


def format_any(report: dict[str, Any]) -> str:
    """One task's report, or each task's of a mixture then the mixture's verdict."""
    if "tasks" not in report:
        return format_report(report)
    parts = [f"== {name} ==\n{format_report(task)}" for name, task in report["tasks"].items()]
    weights = ", ".join(f"{e['task']} (weight {e['weight']:g}: {e['sizes']})" for e in report["mixture"])
    verdict = "USABLE" if report["usable"] else f"NOT USABLE: {report['error']}"
    return "\n\n".join([*parts, f"mixture: {weights}\n{verdict}"])


def validate(args) -> dict[str, Any]:
    """The report of the recipe's task; for a mixture, each task's report (at its share of the sizes) under `tasks`,
    the counts summed, and the check that no question sits in two tasks' different splits."""
    import datasets

    from fine_tune.data.task_splits import phase_split, task_sources
    from fine_tune.task.mixture import mixture_sizes

    datasets.disable_progress_bars()
    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else None
    sources = task_sources(args)
    if len(sources) == 1:
        return validate_task(sources[0], args, args.split_sizes, tokenizer)
    sizes = mixture_sizes(args.split_sizes, args.task_entries)
    reports = {s.spec.name: validate_task(s, args, size, tokenizer) for s, size in zip(sources, sizes, strict=True)}
    invalid: dict[str, int] = {}
    for report in reports.values():
        for name, count in report["invalid"].items():
            invalid[name] = invalid.get(name, 0) + count
    unusable = [f"{name}: {report['error']}" for name, report in reports.items() if not report["usable"]]
    if not unusable:
        try:
            phase_split(args)  # the mixture manifest: splits disjoint across tasks
        except DatasetError as error:
            unusable.append(str(error))
    mixture = {
        "task": args.task_label,
        "letters": sorted({letter for report in reports.values() for letter in report["letters"]}),
        "mixture": [
            {"task": s.spec.name, "weight": s.weight, "sizes": size} for s, size in zip(sources, sizes, strict=True)
        ],
        "rows": sum(report["rows"] for report in reports.values()),
        "valid": sum(report["valid"] for report in reports.values()),
        "invalid": invalid,
        "tasks": reports,
        "usable": not unusable,
    }
    return mixture if not unusable else {**mixture, "error": "; ".join(unusable)}


def validate_task(task, args, sizes, tokenizer) -> dict[str, Any]:
    """One task's report (`task`: a `TaskSource`) for splits of `sizes`."""
    from fine_tune.data.normalise import load_task
    from fine_tune.data.validation_report import task_dataset_report

    normalised = load_task(task.spec, task.hub_split, task.source, args.hf_token_env)
    return task_dataset_report(
        task.spec,
        normalised,
        sizes,
        args.split_seed,
        stratify_by=args.stratify_by,
        tokenizer=tokenizer,
        token_rows=args.token_rows,
        source=task.source,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    try:
        (args,) = parse_recipe("validate", argv)
        parse_only_exit("validate_dataset.py")
        report = validate(args)
    except PipelineError as error:
        if as_json:
            print(json.dumps({"usable": False, "error": str(error)}, ensure_ascii=False))
        else:
            print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(json.dumps(report, indent=2, ensure_ascii=False) if as_json else format_any(report))
    return 0 if report["usable"] else EXIT_BAD_INPUT


if __name__ == "__main__":
    setup_logging()
    sys.exit(main())
