"""Row validation with named reasons and counts: nothing is dropped without being counted under a reason."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets

from fine_tune.data.loading import REQUIRED_COLUMNS
from fine_tune.data.records import MALFORMED_LINE, NOT_UTF8, RefusedRecord
from fine_tune.errors import DatasetError
from fine_tune.task.prompts import (
    LETTERS,
    OPTION_COLUMNS,
)

logger = logging.getLogger(__name__)
CONFLICTING_ANSWER = "conflicting_answer"
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
EXAMPLES_PER_REASON = 5
REASON_DESCRIPTIONS = {
    MALFORMED_LINE: "the line is not one JSON object (truncated JSON, an array, a bare value); the rest are judged",
    NOT_UTF8: "the line holds a byte that is not UTF-8; re-save the file as UTF-8",
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
    CONFLICTING_ANSWER: (
        "the same question and options appear with different answers; every row of the group is kept out of "
        "training and scoring"
    ),
    "duplicate_options": "two options are identical after case/whitespace normalisation (flag only, row kept)",
    DUPLICATE_CONTENT: "same question and options as a row already assigned to a split",
}


@dataclass
class ValidationReport:
    """Row indices per reason (a row may fail several) and per flag (flagged rows stay valid)."""

    total: int
    valid_indices: list[int]
    invalid: dict[str, list[int]]
    flags: dict[str, list[int]]
    examples: dict[str, list[str]] = field(default_factory=dict)
    refused: dict[str, list[str]] = field(default_factory=dict)  # reason -> records that never became rows
    conflicts: list[dict[str, list[str]]] = field(default_factory=list)  # {"ids": [...], "answers": [...]}

    @property
    def valid(self) -> int:
        return len(self.valid_indices)

    @property
    def n_invalid(self) -> int:
        return self.total - self.valid

    def invalid_counts(self) -> dict[str, int]:
        """Rows and refused records per reason, in REASONS order."""
        counts = {name: len(self.invalid.get(name, [])) + len(self.refused.get(name, [])) for name in REASONS}
        return {name: count for name, count in counts.items() if count}

    def summary(self) -> str:
        lines = [f"{self.total} rows: {self.valid} valid, {self.n_invalid} invalid"]
        groups = [("invalid", self.invalid_counts()), ("flag", {n: len(ix) for n, ix in self.flags.items()})]
        for kind, counts in groups:
            for name, count in counts.items():
                examples = ", ".join(self.examples.get(name, []))
                lines.append(f"  {kind} {name}: {count} rows (e.g. {examples}): {REASON_DESCRIPTIONS[name]}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        def counted(counts: dict[str, int]) -> dict[str, Any]:
            return {name: {"count": count, "examples": self.examples.get(name, [])} for name, count in counts.items()}

        return {
            "total": self.total,
            "valid": self.valid,
            "invalid": counted(self.invalid_counts()),
            "flags": counted({n: len(ix) for n, ix in self.flags.items()}),
            "conflicts": self.conflicts,
        }


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
    rows = list(_iter_rows(dataset))
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
        if has_duplicate_options(row):
            flags.setdefault("duplicate_options", []).append(index)
            names = [*names, "duplicate_options"]
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


def first_reasons(report: ValidationReport) -> dict[int, str]:
    """Each invalid row's first reason in REASONS order (the one a split counts it under)."""
    first: dict[int, str] = {}
    for name in REASONS:
        for index in report.invalid.get(name, []):
            first.setdefault(index, name)
    return first


def has_duplicate_options(row: Mapping[str, Any]) -> bool:
    options = [_normalise(row[c]) for c in OPTION_COLUMNS if isinstance(row[c], str) and row[c].strip()]
    return len(set(options)) < len(options)


def row_label(row: Mapping[str, Any], index: int) -> str:
    """The row's `id` when it has one, else `row <index>`."""
    row_id = row.get("id")
    return str(row_id) if row_id not in (None, "") else f"row {index}"


def require_usable(report: ValidationReport, needed: int) -> None:
    """Raise DatasetError, naming every reason and its count, when fewer than `needed` rows are valid."""
    if report.valid >= needed:
        return
    reasons = "; ".join(
        f"{name}: {count} rows (e.g. {', '.join(report.examples.get(name, []))}) - {REASON_DESCRIPTIONS[name]}"
        for name, count in report.invalid_counts().items()
    )
    raise DatasetError(
        f"only {report.valid} of {report.total} rows are usable but {needed} are needed"
        + (f"; invalid rows by reason: {reasons}" if reasons else "")
    )


def _require_columns(dataset: datasets.Dataset) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise DatasetError(f"missing MedMCQA column(s): {', '.join(missing)}")


def _iter_rows(dataset: datasets.Dataset, batch_size: int = 1000) -> Iterator[dict[str, Any]]:
    columns = [c for c in ("id", *REQUIRED_COLUMNS) if c in dataset.column_names]
    for batch in dataset.select_columns(columns).iter(batch_size=batch_size):
        yield from (
            dict(zip(columns, values, strict=True)) for values in zip(*(batch[c] for c in columns), strict=True)
        )


def _normalise(text: Any) -> str:
    return " ".join(str(text).casefold().split()) if text is not None else ""


def content_hash(row: Mapping[str, Any]) -> str:
    """Order-sensitive hash of the casefolded, whitespace-collapsed question and four options."""
    text = "\x1f".join(_normalise(row[c]) for c in ("question", *OPTION_COLUMNS))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def duplicate_content(dataset: datasets.Dataset) -> dict[str, int]:
    """Rows whose content hash occurs more than once, and the number of such groups."""
    counts = Counter(content_hash(row) for row in _iter_rows(dataset))
    repeated = [n for n in counts.values() if n > 1]
    return {"rows": sum(repeated), "groups": len(repeated)}
