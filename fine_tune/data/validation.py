"""Row validation with named reasons and counts: nothing is dropped without being counted under a reason."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets

from fine_tune.data import rows as shared
from fine_tune.data.loading import REQUIRED_COLUMNS
from fine_tune.data.records import MALFORMED_LINE, NOT_UTF8, RefusedRecord
from fine_tune.data.rows import (
    COMMON_DESCRIPTIONS,
    CONFLICTING_ANSWER,
    DUPLICATE_OPTIONS,
    EXAMPLES_PER_REASON,
    RowReport,
    iter_rows,
    row_label,
)
from fine_tune.errors import DatasetError
from fine_tune.task.prompts import LETTERS, OPTION_COLUMNS

logger = logging.getLogger(__name__)
REASONS: tuple[str, ...] = (
    MALFORMED_LINE,
    NOT_UTF8,
    "missing_question",
    "missing_option",
    "cop_out_of_range",
    "wrong_type",
    CONFLICTING_ANSWER,
)
DUPLICATE_CONTENT = "duplicate_content"
REASON_DESCRIPTIONS = {
    **COMMON_DESCRIPTIONS,
    "missing_question": "question is null, empty or whitespace",
    "missing_option": "one of opa..opd is null, empty or whitespace",
    "cop_out_of_range": (
        "cop is null or outside 0..3; cop=-1 marks unlabeled rows (the official MedMCQA test split has no answers), "
        "which cannot be used for training or scoring"
    ),
    "wrong_type": (
        'question or an option is not a string, or cop is not an integer (2.0 counts as 2; a string such as "2" '
        "is refused, not guessed)"
    ),
    DUPLICATE_CONTENT: "same question and options as a row already assigned to a split",
}


@dataclass(kw_only=True)
class ValidationReport(RowReport):
    """A MedMCQA source's rows judged by `validate_rows`, and the records the loader refused (labels by reason)."""

    reasons = REASONS
    descriptions = REASON_DESCRIPTIONS

    refused: dict[str, list[str]] = field(default_factory=dict)  # reason -> records that never became rows

    def invalid_counts(self) -> dict[str, int]:
        """Rows and refused records per reason, in REASONS order."""
        counts = {name: len(self.invalid.get(name, [])) + len(self.refused.get(name, [])) for name in REASONS}
        return {name: count for name, count in counts.items() if count}


def validate_rows(
    dataset: datasets.Dataset, require_labels: bool = True, refused: Sequence[RefusedRecord] = ()
) -> ValidationReport:
    """Check every row; with `require_labels=False` the cop checks are skipped (reporting on unlabeled data).

    `refused` are the records the loader could not turn into rows: they count as invalid with their own reasons. Rows
    with the same content but different answers are all invalid (`conflicting_answer`), their ids listed in
    `conflicts`: which answer is right cannot be known, so neither is trained or scored on.
    """
    _require_columns(dataset)
    invalid: dict[str, list[int]] = {}
    flags: dict[str, list[int]] = {}
    examples: dict[str, list[str]] = {}
    refused_labels: dict[str, list[str]] = {}
    for record in refused:
        refused_labels.setdefault(record.reason, []).append(record.label())
        if len(examples.setdefault(record.reason, [])) < EXAMPLES_PER_REASON:
            examples[record.reason].append(record.label())
    rows = list(iter_rows(dataset, _columns(dataset)))
    conflicted, conflicts = _conflicting_rows(rows) if require_labels else ({}, [])
    valid_indices: list[int] = []
    for index, row in enumerate(rows):
        names = row_problems(row, require_labels)
        if index in conflicted:
            names.append(CONFLICTING_ANSWER)
        for name in names:
            invalid.setdefault(name, []).append(index)
        if not names:
            valid_indices.append(index)
        if shared.has_duplicate_options(row[c] for c in OPTION_COLUMNS):
            flags.setdefault(DUPLICATE_OPTIONS, []).append(index)
            names = [*names, DUPLICATE_OPTIONS]
        for name in names:
            if len(examples.setdefault(name, [])) < EXAMPLES_PER_REASON:
                examples[name].append(row_label(row, index))
    return ValidationReport(
        total=len(dataset) + len(refused),
        valid_indices=valid_indices,
        invalid={r: invalid[r] for r in REASONS if r in invalid},
        flags=flags,
        examples=examples,
        refused=refused_labels,
        conflicts=conflicts,
    )


def _conflicting_rows(rows: list[dict[str, Any]]) -> tuple[dict[int, str], list[dict[str, list[str]]]]:
    """Indices of otherwise valid rows whose content recurs with another answer, and each such group's ids."""
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        if not row_problems(row):
            groups.setdefault(content_hash(row), []).append(index)
    conflicted: dict[int, str] = {}
    conflicts = []
    for digest, indices in groups.items():
        answers = [LETTERS[rows[i]["cop"]] for i in indices]
        if len(set(answers)) > 1:
            conflicted.update(dict.fromkeys(indices, digest))
            conflicts.append({"ids": [row_label(rows[i], i) for i in indices], "answers": answers})
    return conflicted, conflicts


def row_problems(row: Mapping[str, Any], require_labels: bool = True) -> list[str]:
    """The reasons (in REASONS order) that make a row unusable; empty when it is valid."""
    problems = set()
    texts = [("missing_question", row["question"])] + [("missing_option", row[c]) for c in OPTION_COLUMNS]
    for reason, value in texts:
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.add(reason)
        elif not isinstance(value, str):
            problems.add("wrong_type")
    if require_labels:
        cop = row["cop"]
        if cop is not None and (isinstance(cop, bool) or not isinstance(cop, int)):
            problems.add("wrong_type")
        elif cop is None or not 0 <= cop < len(LETTERS):
            problems.add("cop_out_of_range")
    return [r for r in REASONS if r in problems]


def _require_columns(dataset: datasets.Dataset) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise DatasetError(f"missing MedMCQA column(s): {', '.join(missing)}")


def content_hash(row: Mapping[str, Any]) -> str:
    """Order-sensitive hash of the casefolded, whitespace-collapsed question and four options: the canonical row's
    `fine_tune.data.rows.content_hash`, so a MedMCQA row and its canonical form hash the same."""
    return shared.content_hash({"question": row["question"], "options": [row[c] for c in OPTION_COLUMNS]})


def require_usable(report: ValidationReport, needed: int) -> None:
    """`report.require_usable(needed)`."""
    report.require_usable(needed)


def duplicate_content(dataset: datasets.Dataset) -> dict[str, int]:
    """Rows whose content hash occurs more than once, and the number of such groups."""
    counts = Counter(content_hash(row) for row in iter_rows(dataset, _columns(dataset)))
    repeated = [n for n in counts.values() if n > 1]
    return {"rows": sum(repeated), "groups": len(repeated)}


def _columns(dataset: datasets.Dataset) -> list[str]:
    return [c for c in ("id", *REQUIRED_COLUMNS) if c in dataset.column_names]
