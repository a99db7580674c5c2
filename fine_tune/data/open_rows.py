"""An open-answer task's rows -> its canonical row schema (OPEN_COLUMNS), and a plain-text task's -> TEXT_COLUMNS
(id, text, subject), with a named reason for each row left out (a text task's: missing_text, wrong_type).

    id: str | None        the row's id when the task has one
    question: str
    answer: str           the reference answer text
    context: str | None   a passage the prompt shows under the task's context label
    subject: str | None   the subject field, else the specialty file (or Hub config) the row came from

The reasons are those of multiple-choice rows that apply (`fine_tune.data.normalise.REASON_DESCRIPTIONS`):
missing_question, missing_answer (a null, empty or whitespace reference), missing_context, wrong_type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import datasets

from fine_tune.data.reading import CONFIG_COLUMN
from fine_tune.data.rows import MISSING, lookup
from fine_tune.task.spec import TaskSpec

OPEN_COLUMNS: tuple[str, ...] = ("id", "question", "answer", "context", "subject")
OPEN_FEATURES = datasets.Features({name: datasets.Value("string") for name in OPEN_COLUMNS})
OPEN_REASONS: tuple[str, ...] = ("missing_question", "missing_answer", "missing_context", "wrong_type")
TEXT_COLUMNS: tuple[str, ...] = ("id", "text", "subject")
TEXT_FEATURES = datasets.Features({name: datasets.Value("string") for name in TEXT_COLUMNS})


def normalise_open_row(spec: TaskSpec, row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """(canonical open row, []) for a usable row, else (None, its reasons)."""
    problems: set[str] = set()
    question = _text(lookup(row, spec.question), "missing_question", problems)
    answer = _text(lookup(row, spec.answer.field), "missing_answer", problems)
    context = None
    if spec.context is not None:
        context = _text(lookup(row, spec.context), "missing_context", problems, join=True)
    if problems:
        return None, [reason for reason in OPEN_REASONS if reason in problems]
    return {
        "id": _optional(lookup(row, spec.id)) if spec.id else None,
        "question": question,
        "answer": answer,
        "context": context,
        "subject": _subject(spec, row),
    }, []


def normalise_text_row(spec: TaskSpec, row: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """(canonical text row, []) for a usable record of a text task (its text field: `spec.question`), else (None,
    its reasons). The text is kept as it is (no stripping: whitespace is part of what the model learns)."""
    problems: set[str] = set()
    value = lookup(row, spec.question)
    text = _text(value, "missing_text", problems)
    if problems:
        return None, sorted(problems)
    return {
        "id": _optional(lookup(row, spec.id)) if spec.id else None,
        "text": value if isinstance(value, str) else text,
        "subject": _subject(spec, row),
    }, []


def empty_rows(spec: TaskSpec) -> datasets.Dataset:
    columns, features = (TEXT_COLUMNS, TEXT_FEATURES) if spec.is_text else (OPEN_COLUMNS, OPEN_FEATURES)
    return datasets.Dataset.from_dict({name: [] for name in columns}, features=features)


def _blank(value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is None or value is MISSING or (isinstance(value, str) and not value.strip())


def _text(value: Any, reason: str, problems: set[str], join: bool = False) -> str | None:
    """A non-blank string (a list of strings joined with newlines when `join`); else the reason, or wrong_type."""
    if join and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "\n".join(v.strip() for v in value if v.strip())
    if _blank(value):
        problems.add(reason)
        return None
    if not isinstance(value, str):
        problems.add("wrong_type")
        return None
    return value.strip()


def _optional(value: Any) -> str | None:
    return None if _blank(value) else str(value).strip()


def _subject(spec: TaskSpec, row: Mapping[str, Any]) -> str | None:
    subject = _optional(lookup(row, spec.subject)) if spec.subject else None
    config = row.get(CONFIG_COLUMN)
    return subject or (str(config) if config else None)
