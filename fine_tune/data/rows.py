"""Row helpers of the normaliser (`normalise`) and the splitter (`task_splits`): text normalisation, content hashes,
duplicate options, row labels, row iteration, and the report of invalid rows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import datasets

from fine_tune.errors import DatasetError

EXAMPLES_PER_REASON = 5
CONFLICTING_ANSWER = "conflicting_answer"
DUPLICATE_OPTIONS = "duplicate_options"
DUPLICATE_CONTENT = "duplicate_content"  # a split skips a row whose content an earlier row already brought


@dataclass(kw_only=True)
class RowReport:
    """Source row indices per reason (a row may fail several) and per flag (flagged rows stay valid); `invalid` is
    kept in `reasons` order, and `conflicts` lists each group of rows with one content and different answers."""

    reasons: ClassVar[tuple[str, ...]] = ()
    descriptions: ClassVar[Mapping[str, str]] = {}

    total: int
    valid_indices: list[int]
    invalid: dict[str, list[int]]
    flags: dict[str, list[int]]
    examples: dict[str, list[str]] = field(default_factory=dict)
    conflicts: list[dict[str, list[str]]] = field(default_factory=list)  # {"ids": [...], "answers": [letters]}

    @property
    def valid(self) -> int:
        return len(self.valid_indices)

    @property
    def n_invalid(self) -> int:
        return self.total - self.valid

    def invalid_counts(self) -> dict[str, int]:
        """Invalid rows per reason, in `reasons` order."""
        return {name: len(indices) for name, indices in self.invalid.items()}

    def summary(self) -> str:
        lines = [f"{self._named()}{self.total} rows: {self.valid} valid, {self.n_invalid} invalid"]
        groups = [("invalid", self.invalid_counts()), ("flag", {n: len(ix) for n, ix in self.flags.items()})]
        for kind, counts in groups:
            for name, count in counts.items():
                examples = ", ".join(self.examples.get(name, []))
                lines.append(f"  {kind} {name}: {count} rows (e.g. {examples}): {self.descriptions[name]}")
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

    def require_usable(self, needed: int) -> None:
        """DatasetError naming every reason and its count when fewer than `needed` rows are valid."""
        if self.valid >= needed:
            return
        reasons = "; ".join(
            f"{name}: {count} rows (e.g. {', '.join(self.examples.get(name, []))}) - {self.descriptions[name]}"
            for name, count in self.invalid_counts().items()
        )
        raise DatasetError(
            f"{self._named()}only {self.valid} of {self.total} rows are usable but {needed} are needed"
            + (f"; invalid rows by reason: {reasons}" if reasons else "")
        )

    def _named(self) -> str:
        return ""


def first_reasons(report: RowReport) -> dict[int, str]:
    """Each invalid row's first reason in the report's `reasons` order (the one a split counts it under)."""
    first: dict[int, str] = {}
    for name in report.reasons:
        for index in report.invalid.get(name, []):
            first.setdefault(index, name)
    return first


def normalise_text(text: Any) -> str:
    """Casefolded, whitespace-collapsed text (duplicate and answer-text matching)."""
    return " ".join(str(text).casefold().split()) if text is not None else ""


def has_duplicate_options(options: Iterable[Any]) -> bool:
    """Two of the non-blank text options are the same after `normalise_text`."""
    texts = [normalise_text(option) for option in options if isinstance(option, str) and option.strip()]
    return len(set(texts)) < len(texts)


def content_hash(row: Mapping[str, Any]) -> str:
    """Order-sensitive hash of a canonical row's casefolded, whitespace-collapsed question and options (and context
    when it has one); an open task's row has no options, a text task's row is its text."""
    parts = [row["question"] if "question" in row else row["text"], *(row.get("options") or [])] + (
        [row["context"]] if row.get("context") else []
    )
    text = "\x1f".join(normalise_text(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


MISSING = object()  # `lookup`'s value for an absent column or path step


def lookup(row: Mapping[str, Any], path: str | None) -> Any:
    """The value at a column name or dotted path; `MISSING` when a step is absent (a null step gives None)."""
    if path is None:
        return None
    if path in row:
        return row[path]
    value: Any = row
    for part in path.split("."):
        if value is None:
            return None
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def row_label(row: Mapping[str, Any], index: int) -> str:
    """The row's `id` when it has one, else `row <index>`."""
    return id_label(row.get("id"), index)


def id_label(row_id: Any, index: int) -> str:
    return str(row_id) if row_id not in (None, "") else f"row {index}"


def iter_rows(
    dataset: datasets.Dataset | Iterable[Mapping[str, Any]], batch_size: int = 1000
) -> Iterator[dict[str, Any]]:
    """Each row as a dict, read from a Dataset in batches."""
    if not isinstance(dataset, datasets.Dataset):
        yield from (dict(row) for row in dataset)
        return
    columns = dataset.column_names
    for batch in dataset.iter(batch_size=batch_size):
        yield from (
            dict(zip(columns, values, strict=True)) for values in zip(*(batch[c] for c in columns), strict=True)
        )
