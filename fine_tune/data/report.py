"""What `scripts/validate_dataset.py` reports about a source: validity, duplicates, conflicts, splits, lengths."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import datasets
import numpy as np

from fine_tune.constants import DEFAULT_SPLIT_SEED, DEFAULT_SPLIT_SIZES
from fine_tune.data.normalise import NormalisedRows
from fine_tune.data.records import RefusedRecord
from fine_tune.data.rows import RowReport
from fine_tune.data.splits import contamination_count, manifest_hash, split_dataset
from fine_tune.data.validation import duplicate_content, validate_rows
from fine_tune.errors import DatasetError
from fine_tune.task.prompts import prompt_messages, render_prompt, render_training_text
from fine_tune.task.spec import TaskSpec

logger = logging.getLogger(__name__)


def token_length_stats(dataset: datasets.Dataset, tokenizer: Any, max_rows: int | None = None) -> dict[str, Any]:
    """Token-length mean/p50/p95/max of the rendered prompt and of prompt + target, over the valid rows."""
    report = validate_rows(dataset)
    indices = report.valid_indices[:max_rows] if max_rows is not None else report.valid_indices
    if not indices:
        raise DatasetError("no valid rows to measure token lengths on")
    return rendered_lengths(tokenizer, dataset.select(indices))


def rendered_lengths(tokenizer: Any, rows: Iterable[Mapping[str, Any]], task: TaskSpec | None = None) -> dict:
    """Length stats of each row's generation prompt and full SFT training text, rendered exactly as the phases do
    (`render_prompt`, `render_training_text`: the system prompt folded where the template drops it)."""
    rows = list(rows)
    prompts = [render_prompt(tokenizer, prompt_messages(row, task=task)) for row in rows]
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


def dataset_report(
    dataset: datasets.Dataset,
    sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
    seed: int = DEFAULT_SPLIT_SEED,
    *,
    tokenizer: Any = None,
    token_rows: int | None = None,
    source: str | None = None,
    refused: Sequence[RefusedRecord] = (),
) -> dict[str, Any]:
    """Everything `scripts/validate_dataset.py` reports, as one JSON-ready dict (`usable` False plus `error`);
    `refused` are the records the loader could not turn into rows (counted as invalid, with their lines)."""
    report = validate_rows(dataset, refused=refused)
    result = report_keys(report, source, sizes, duplicate_content(dataset), dataset["subject_name"])
    try:
        split = split_dataset(dataset, sizes, seed, source=source)
    except DatasetError as error:
        result.update(usable=False, error=str(error), splits={}, skipped={}, contamination=None)
    else:
        result.update(split_summary(split))
    if tokenizer is not None and report.valid:
        result["token_lengths"] = token_length_stats(dataset, tokenizer, token_rows)
    return result


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
    """`dataset_report` for any task's normalised rows: the same keys, plus `task` and `letters`."""
    from fine_tune.data.normalise import content_hash
    from fine_tune.data.task_splits import split_normalised

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
    """The keys both paths report about their rows: counts by reason, examples, conflicts, duplicates, subjects."""
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
