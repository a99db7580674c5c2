from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import datasets

from fine_tune.data.loading import REQUIRED_COLUMNS
from fine_tune.errors import DatasetError
from fine_tune.task.prompts import (
    LETTERS,
    OPTION_COLUMNS,
)

logger = logging.getLogger(__name__)
REASONS: tuple[str, ...] = ("missing_question", "missing_option", "cop_out_of_range", "wrong_type")
FLAGS: tuple[str, ...] = ("duplicate_options",)
DUPLICATE_CONTENT = "duplicate_content"
EXAMPLES_PER_REASON = 5
REASON_DESCRIPTIONS = {
    "missing_question": "question is null, empty or whitespace",
    "missing_option": "one of opa..opd is null, empty or whitespace",
    "cop_out_of_range": (
        "cop is null or outside 0..3; cop=-1 marks unlabeled rows (the official MedMCQA test split has no answers), "
        "which cannot be used for training or scoring"
    ),
    "wrong_type": "question or an option is not a string, or cop is not an integer",
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

    @property
    def valid(self) -> int:
        return len(self.valid_indices)

    @property
    def n_invalid(self) -> int:
        return self.total - self.valid

    def summary(self) -> str:
        lines = [f"{self.total} rows: {self.valid} valid, {self.n_invalid} invalid"]
        for kind, groups in (("invalid", self.invalid), ("flag", self.flags)):
            for name, indices in groups.items():
                examples = ", ".join(self.examples.get(name, []))
                lines.append(f"  {kind} {name}: {len(indices)} rows (e.g. {examples}): {REASON_DESCRIPTIONS[name]}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        def counted(groups: dict[str, list[int]]) -> dict[str, Any]:
            return {name: {"count": len(ix), "examples": self.examples.get(name, [])} for name, ix in groups.items()}

        return {
            "total": self.total,
            "valid": self.valid,
            "invalid": counted(self.invalid),
            "flags": counted(self.flags),
        }


def validate_rows(dataset: datasets.Dataset, require_labels: bool = True) -> ValidationReport:
    """Check every row; with `require_labels=False` the cop check is skipped (reporting on unlabeled data)."""
    _require_columns(dataset)
    invalid: dict[str, list[int]] = {}
    flags: dict[str, list[int]] = {}
    examples: dict[str, list[str]] = {}
    valid_indices: list[int] = []
    for index, row in enumerate(_iter_rows(dataset)):
        names = row_problems(row, require_labels)
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
        total=len(dataset),
        valid_indices=valid_indices,
        invalid={r: invalid[r] for r in REASONS if r in invalid},
        flags=flags,
        examples=examples,
    )


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
        f"{name}: {len(ix)} rows (e.g. {', '.join(report.examples.get(name, []))}) - {REASON_DESCRIPTIONS[name]}"
        for name, ix in report.invalid.items()
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
