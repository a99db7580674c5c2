"""What `scripts/validate_dataset.py` reports about a source: validity, duplicates, conflicts, splits, lengths."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from fine_tune.constants import DEFAULT_SPLIT_SEED, DEFAULT_SPLIT_SIZES
from fine_tune.data.normalise import NormalisedRows
from fine_tune.data.rows import RowReport, content_hash
from fine_tune.data.splits import contamination_count, manifest_hash
from fine_tune.data.task_splits import split_normalised
from fine_tune.errors import DatasetError
from fine_tune.task.prompts import prompt_messages, render_prompt, render_training_text
from fine_tune.task.spec import TaskSpec


def rendered_lengths(tokenizer: Any, rows: Iterable[Mapping[str, Any]], task: TaskSpec | None = None) -> dict:
    """Length stats of each row's generation prompt and full SFT training text, rendered exactly as the phases do
    (`render_prompt`, `render_training_text`: the system prompt folded where the template drops it)."""
    rows = list(rows)
    text = task is not None and task.is_text  # plain text: no prompt
    prompts = [""] * len(rows) if text else [render_prompt(tokenizer, prompt_messages(row, task=task)) for row in rows]
    full = [render_training_text(tokenizer, row, task) for row in rows]
    return {"rows": len(rows), "prompt": _length_stats(tokenizer, prompts), "full": _length_stats(tokenizer, full)}


def _length_stats(tokenizer: Any, texts: list[str]) -> dict[str, float]:
    lengths = np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]])
    return {
        "mean": round(float(lengths.mean()), 1),
        "p50": round(float(np.percentile(lengths, 50)), 1),
        "p95": round(float(np.percentile(lengths, 95)), 1),
        "max": int(lengths.max()),
    }


def task_dataset_report(
    task: TaskSpec,
    normalised: NormalisedRows,
    sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
    seed: int = DEFAULT_SPLIT_SEED,
    *,
    stratify_by: str | None = None,
    tokenizer: Any = None,
    token_rows: int | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Everything `scripts/validate_dataset.py` reports about a task's normalised rows (`load_task`), as one
    JSON-ready dict (`usable` False plus `error` when the splits cannot be made)."""
    report, rows = normalised.report, normalised.dataset
    hashes = Counter(content_hash(row) for row in rows)
    repeated = [n for n in hashes.values() if n > 1]
    duplicates = {"rows": sum(repeated), "groups": len(repeated)}
    result = {
        "task": task.name,
        "letters": list(task.letters),
        **report_keys(report, source, sizes, duplicates, rows["subject"]),
    }
    try:
        report.require_usable(sum(sizes.values()))  # names each reason, with its meaning
        split = split_normalised(task, normalised, sizes, seed, source=source, stratify_by=stratify_by)
    except DatasetError as error:
        result.update(usable=False, error=str(error), splits={}, skipped={}, contamination=None)
    else:
        result.update(split_summary(split))
        if stratify_by is not None:
            result["strata"] = split.manifest["strata"]
    if tokenizer is not None and report.valid:
        result["token_lengths"] = rendered_lengths(
            tokenizer, rows.select(range(min(token_rows or len(rows), len(rows)))), task
        )
    return result


def report_keys(
    report: RowReport,
    source: str | None,
    sizes: Mapping[str, int],
    duplicates: dict[str, int],
    subjects: Iterable[str | None],
) -> dict[str, Any]:
    """The report's keys about the rows: counts by reason, examples, conflicts, duplicates, subjects."""
    counted = Counter(subject if subject is not None else "(none)" for subject in subjects)
    return {
        "source": source,
        "rows": report.total,
        "valid": report.valid,
        "invalid": report.invalid_counts(),
        "flags": {name: len(ix) for name, ix in report.flags.items()},
        "examples": report.examples,
        "conflicts": report.conflicts,
        "duplicates": duplicates,
        "subjects": dict(counted.most_common()),
        "requested_sizes": dict(sizes),
    }


def split_summary(split: Any) -> dict[str, Any]:
    """The report's keys for a split that could be made: sizes, skipped rows, contamination and manifest hash."""
    return {
        "usable": True,
        "splits": {name: len(part) for name, part in split.splits.items()},
        "skipped": split.skipped,
        "contamination": contamination_count(split.manifest),
        "manifest_hash": manifest_hash(split.manifest),
    }
