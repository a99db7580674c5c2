"""Any task's rows -> one canonical row schema, with a named reason for every row that cannot be used.

The canonical row (CANONICAL_COLUMNS) is what the rest of the pipeline reads, whatever the task:

    id: str | None        the row's id when the task has one
    question: str
    options: list[str]    min_options..len(letters) option texts, in letter order
    answer: int           0-based index into options
    context: str | None   e.g. PubMedQA's abstract (paragraphs joined with newlines)
    exp: str | None       an explanation, when the task has one
    subject: str | None   the subject column, else the Hub config the row came from

Bad rows are never dropped silently: each gets every reason (REASONS) that applies, counted in a TaskReport.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets

from fine_tune import hub_access as hub
from fine_tune.data.open_rows import OPEN_FEATURES, TEXT_FEATURES, empty_rows, normalise_open_row, normalise_text_row
from fine_tune.data.reading import CONFIG_COLUMN, read_task_rows
from fine_tune.data.records import MALFORMED_LINE, NOT_UTF8, RefusedRecord
from fine_tune.data.rows import (
    CONFLICTING_ANSWER,
    DUPLICATE_OPTIONS,
    EXAMPLES_PER_REASON,
    RowReport,
    content_hash,
    has_duplicate_options,
    id_label,
    iter_rows,
    lookup,
    normalise_text,
)
from fine_tune.data.rows import MISSING as _MISSING
from fine_tune.data.topics import tag_row
from fine_tune.errors import DatasetError
from fine_tune.task.spec import SUBJECT_TAGGED, TaskSpec

logger = logging.getLogger(__name__)
CANONICAL_COLUMNS: tuple[str, ...] = ("id", "question", "options", "answer", "context", "exp", "subject")
CANONICAL_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "question": datasets.Value("string"),
        "options": datasets.List(datasets.Value("string")),
        "answer": datasets.Value("int64"),
        "context": datasets.Value("string"),
        "exp": datasets.Value("string"),
        "subject": datasets.Value("string"),
    }
)
REASON_DESCRIPTIONS: dict[str, str] = {
    MALFORMED_LINE: (
        "the record is not one JSON object (truncated or malformed JSON, an array, a bare value); the rest are judged"
    ),
    NOT_UTF8: "the line holds a byte that is not UTF-8; re-save the file as UTF-8",
    "missing_question": "the question is null, empty or whitespace",
    "missing_option": "an option is null, empty or whitespace",
    "option_count": "the number of options is outside min_options..len(letters), or a dict key is not a task letter",
    "missing_answer": "the answer is null, NaN or empty (e.g. a MedMCQA row with cop null)",
    "answer_out_of_range": (
        "the answer index or letter points outside the row's options (e.g. MedMCQA's cop=-1 marks unlabeled test "
        "rows, which cannot be used for training or scoring)"
    ),
    "answer_not_in_options": "the answer (text, key or letter) matches none of the row's options or letters",
    "ambiguous_answer": "the answer text matches more than one option",
    "missing_context": "the task puts a context in the prompt but the row's context is null or empty",
    "missing_text": "a text task's text is null, empty or whitespace",
    "needs_image": "the question refers to an image, which a text prompt cannot show",
    CONFLICTING_ANSWER: (
        "the same question and options appear with different answers; every row of the group is kept out of "
        "training and scoring"
    ),
    "wrong_type": (
        "a field has the wrong type (question/options not strings, an index not an integer: 2.0 counts as 2, but a "
        'string such as "2" is refused, not guessed, except in a CSV, whose cells are all text), or a record\'s value '
        "has a type that clashes with the rest of its column in the file"
    ),
    DUPLICATE_OPTIONS: "two options are identical after case/whitespace normalisation (flag only, row kept)",
}
REASONS: tuple[str, ...] = tuple(name for name in REASON_DESCRIPTIONS if name != DUPLICATE_OPTIONS)


@dataclass(kw_only=True)
class TaskReport(RowReport):
    """A task's source rows judged by `normalise_dataset` (refused records included, numbered after the rows)."""

    reasons = REASONS
    descriptions = REASON_DESCRIPTIONS

    task: str
    letters: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "letters": list(self.letters), **super().to_dict()}

    def _named(self) -> str:
        return f"{self.task}: "


@dataclass
class NormalisedRows:
    dataset: datasets.Dataset  # canonical rows of the valid source rows, in source order
    source_indices: list[int]  # row i of `dataset` is source row source_indices[i]
    report: TaskReport
    fingerprint: str | None = None  # the source Dataset's fingerprint, recorded in split manifests


def normalise_row(
    spec: TaskSpec, row: Mapping[str, Any], untyped: bool = False
) -> tuple[dict[str, Any] | None, list[str]]:
    """(canonical row, []) for a usable row, else (None, its reasons in REASONS order); `untyped`: the row is a CSV
    line, so an index answer may be written as text ("2")."""
    problems: set[str] = set()
    question = _required_text(lookup(row, spec.question), "missing_question", problems)
    options = _options(spec, row, problems)
    if options is not None:
        answer = _answer(spec, row, options, problems, untyped)
    elif _is_blank(lookup(row, spec.answer.field)):
        problems.add("missing_answer")
    context = None
    if spec.context is not None:
        context = _joined_text(lookup(row, spec.context), problems)
        if context is None and "wrong_type" not in problems:
            problems.add("missing_context")
    if spec.image is not None and _has_value(lookup(row, spec.image)):
        problems.add("needs_image")
    if problems:
        return None, [r for r in REASONS if r in problems]
    return {
        "id": _optional_text(lookup(row, spec.id)) if spec.id else None,
        "question": question,
        "options": options,
        "answer": answer,
        "context": context,
        "exp": _optional_text(lookup(row, spec.explanation)) if spec.explanation else None,
        "subject": tag_row(question, options, context)
        if spec.subject_source == SUBJECT_TAGGED
        else _subject(spec, row),
    }, []


def normalise_dataset(
    spec: TaskSpec,
    dataset: datasets.Dataset | Iterable[Mapping[str, Any]],
    refused: Sequence[RefusedRecord] = (),
    untyped: bool = False,
) -> NormalisedRows:
    """Every row checked and mapped; the valid ones as a canonical Dataset, the rest counted by reason.

    `refused` are the source's records that the loader could not turn into rows: they are source rows too, numbered
    after the dataset's (row n + k is the k-th refused record), each invalid under its own reason, so a split skips
    and counts them like any other invalid row. `untyped`: the rows come from a CSV (see `normalise_row`).
    """
    if isinstance(dataset, datasets.Dataset) and not (refused and len(dataset) == 0):
        check_columns(spec, dataset.column_names)
    rows: list[dict[str, Any]] = []
    valid_indices: list[int] = []
    invalid: dict[str, list[int]] = {}
    flags: dict[str, list[int]] = {}
    examples: dict[str, list[str]] = {}
    labels: dict[int, str] = {}
    total = 0
    normalise = normalise_open_row if spec.is_open else normalise_text_row
    for index, row in enumerate(iter_rows(dataset)):
        total += 1
        canonical, names = normalise_row(spec, row, untyped) if spec.type == "mcq" else normalise(spec, row)
        labels[index] = _label(spec, row, index)
        for name in names:
            invalid.setdefault(name, []).append(index)
        if canonical is not None:
            rows.append(canonical)
            valid_indices.append(index)
            if spec.type == "mcq" and has_duplicate_options(canonical["options"]):
                flags.setdefault(DUPLICATE_OPTIONS, []).append(index)
                names = [DUPLICATE_OPTIONS]
        for name in names:
            if len(examples.setdefault(name, [])) < EXAMPLES_PER_REASON:
                examples[name].append(labels[index])
    for index, record in enumerate(refused, start=total):
        invalid.setdefault(record.reason, []).append(index)
        if len(examples.setdefault(record.reason, [])) < EXAMPLES_PER_REASON:
            examples[record.reason].append(record.label())
    total += len(refused)
    groups = conflict_groups(rows) if spec.type == "mcq" else []  # an open question may have several references
    conflicts = [
        {
            "ids": [labels[valid_indices[p]] for p in group],
            "answers": [spec.letters[rows[p]["answer"]] for p in group],
        }
        for group in groups
    ]
    conflicted = sorted(position for group in groups for position in group)
    if conflicted:
        invalid[CONFLICTING_ANSWER] = [valid_indices[i] for i in conflicted]
        examples[CONFLICTING_ANSWER] = [labels[valid_indices[i]] for i in conflicted[:EXAMPLES_PER_REASON]]
        keep = [i for i in range(len(rows)) if i not in set(conflicted)]
        rows, valid_indices = [rows[i] for i in keep], [valid_indices[i] for i in keep]
    report = TaskReport(
        task=spec.name,
        letters=spec.letters,
        total=total,
        valid_indices=valid_indices,
        invalid={r: invalid[r] for r in REASONS if r in invalid},
        flags=flags,
        examples=examples,
        conflicts=conflicts,
    )
    features = OPEN_FEATURES if spec.is_open else TEXT_FEATURES if spec.is_text else CANONICAL_FEATURES
    canonical_rows = datasets.Dataset.from_list(rows, features=features) if rows else _empty(spec)
    fingerprint = dataset._fingerprint if isinstance(dataset, datasets.Dataset) else None
    return NormalisedRows(canonical_rows, valid_indices, report, fingerprint)


def required_fields(spec: TaskSpec) -> list[str]:
    """The field paths a task needs from every source: question (a text task's text), options, answer, context."""
    context = [spec.context] if spec.context else []
    if spec.is_text:
        return [spec.question]
    if spec.is_open:
        return [spec.question, spec.answer.field, *context]
    layout = spec.options.layout
    options = [] if layout == "fixed" else list(spec.options.columns) if layout == "columns" else [spec.options.field]
    return [spec.question, *options, spec.answer.field, *context]


def check_columns(spec: TaskSpec, columns: Iterable[str]) -> None:
    """DatasetError when a column the task needs is absent: the wrong --task or the wrong data, said in one line.
    Absent optional columns (id, explanation, subject, image) are read as nulls."""
    columns = set(columns)
    missing = [path for path in required_fields(spec) if not _column_present(path, columns)]
    columns -= {CONFIG_COLUMN}
    if missing:
        raise DatasetError(
            f"task {spec.name}: column(s) {', '.join(missing)} not in the data (found: {', '.join(sorted(columns))}); "
            f"check --task and the dataset (the task file {spec.source_file or spec.name} says where each field is)"
        )
    optional = [spec.id, spec.explanation, spec.subject, spec.image]
    absent = [path for path in optional if path and not _column_present(path, columns)]
    if absent:
        logger.info("task %s: optional column(s) %s absent, read as null", spec.name, ", ".join(absent))


def _column_present(path: str, columns: set[str]) -> bool:
    return path in columns or path.split(".")[0] in columns


def conflict_groups(rows: list[Mapping[str, Any]]) -> list[list[int]]:
    """Positions of canonical rows whose content recurs with a different answer, one group per content (in order of
    first appearance): which answer is right cannot be known, so none of a group is trained or scored on."""
    groups: dict[str, list[int]] = {}
    for position, row in enumerate(rows):
        groups.setdefault(content_hash(row), []).append(position)
    return [positions for positions in groups.values() if len({rows[p]["answer"] for p in positions}) > 1]


def load_task(spec: TaskSpec, split: str, source: str | None = None, token_env: str = hub.TOKEN_ENV) -> NormalisedRows:
    """Load `split` of the task and normalise it; the report counts every row that was left out and why."""
    loaded = read_task_rows(spec, split, source, token_env)
    dataset = select_source_columns(spec, loaded.dataset)
    normalised = normalise_dataset(spec, dataset, loaded.refused, loaded.untyped)
    if normalised.report.n_invalid:
        logger.warning("%s", normalised.report.summary())
    for conflict in normalised.report.conflicts:
        pairs = ", ".join(f"{i} ({a})" for i, a in zip(conflict["ids"], conflict["answers"], strict=True))
        logger.warning("%s: same question, different answers, kept out: %s", spec.name, pairs)
    return normalised


def select_source_columns(spec: TaskSpec, dataset: datasets.Dataset) -> datasets.Dataset:
    """The task's `source_columns` in order (none listed: `dataset` as is): the columns a field needs must be there,
    other absent ones are added as null text, all-null ones typed as text, and any others dropped. A source whose
    every record was refused (no columns) is left as is."""
    if not spec.source_columns or not dataset.column_names:
        return dataset
    check_columns(spec, dataset.column_names)
    for column in spec.source_columns:
        if column not in dataset.column_names:
            dataset = dataset.add_column(column, [None] * len(dataset), feature=datasets.Value("string"))
    text = datasets.Value("string")
    all_null = {c: text for c in spec.source_columns if dataset.features[c] == datasets.Value("null")}
    if all_null:
        dataset = dataset.cast(datasets.Features({**dataset.features, **all_null}))
    extra = [c for c in dataset.column_names if c not in spec.source_columns and c != CONFIG_COLUMN]
    if extra:
        logger.info("%s: ignoring column(s) not in source_columns: %s", spec.name, ", ".join(extra))
    kept = [*spec.source_columns, *([CONFIG_COLUMN] if CONFIG_COLUMN in dataset.column_names else [])]
    return dataset.select_columns(kept)


def _label(spec: TaskSpec, row: Mapping[str, Any], index: int) -> str:
    """The row's id when the task has one and the row sets it, else `row <index>`."""
    row_id = lookup(row, spec.id) if spec.id else None
    return id_label(None if row_id is _MISSING else row_id, index)


def _required_text(value: Any, reason: str, problems: set[str]) -> str | None:
    if _is_blank(value):
        problems.add(reason)
        return None
    if not isinstance(value, str):
        problems.add("wrong_type")
        return None
    return value


def _optional_text(value: Any) -> str | None:
    if value is None or value is _MISSING:
        return None
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value if v is not None)
    text = str(value)
    return text if text.strip() else None


def _joined_text(value: Any, problems: set[str]) -> str | None:
    """A string, or a list of strings joined with newlines (PubMedQA's abstract paragraphs); None when empty."""
    if value is None or value is _MISSING:
        return None
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            problems.add("wrong_type")
            return None
        value = "\n".join(v.strip() for v in value if v.strip())
    if not isinstance(value, str):
        problems.add("wrong_type")
        return None
    return value if value.strip() else None


def _has_value(value: Any) -> bool:
    if value is None or value is _MISSING:
        return False
    if isinstance(value, Mapping):  # an Image feature as {bytes, path}
        return any(_has_value(v) for v in value.values())
    return not (isinstance(value, str | bytes | list) and not value)


def _options(spec: TaskSpec, row: Mapping[str, Any], problems: set[str]) -> list[str] | None:
    layout = spec.options.layout
    if layout == "fixed":
        return list(spec.options.fixed)
    if layout == "columns":
        values = [lookup(row, column) for column in spec.options.columns]
        while len(values) > spec.min_options and _is_blank(values[-1]):
            values.pop()  # a task with min_options < len(letters): trailing empty columns are absent options
    else:
        raw = lookup(row, spec.options.field)
        if raw is None or raw is _MISSING:
            problems.add("missing_option")
            return None
        values = _option_values(spec, raw, problems)
        if values is None:
            return None
    if not spec.min_options <= len(values) <= spec.max_options:
        problems.add("option_count")
        return None
    options = []
    for value in values:
        text = _required_text(value, "missing_option", problems)
        options.append(text)
    return None if any(option is None for option in options) else options


def _option_values(spec: TaskSpec, raw: Any, problems: set[str]) -> list[Any] | None:
    layout = spec.options.layout
    if layout == "list":
        if not isinstance(raw, list):
            problems.add("wrong_type")
            return None
        return list(raw)
    if layout == "dict":
        if not isinstance(raw, Mapping):
            problems.add("wrong_type")
            return None
        present = {key: value for key, value in raw.items() if not _is_blank(value)}
        if set(present) - set(spec.letters):
            problems.add("option_count")
            return None
        count = len(present)
        if set(present) != set(spec.letters[:count]):
            problems.add("missing_option")  # a gap: e.g. A, B and D set but C null
            return None
        return [present[letter] for letter in spec.letters[:count]]
    if not isinstance(raw, list) or not all(isinstance(item, Mapping) for item in raw):
        problems.add("wrong_type")
        return None
    return [item.get(spec.options.value) for item in raw]


def _is_blank(value: Any) -> bool:
    """Null, absent, NaN (a missing number in pandas-written files) or whitespace-only text."""
    if isinstance(value, float) and math.isnan(value):
        return True
    return value is None or value is _MISSING or (isinstance(value, str) and not value.strip())


def _answer(
    spec: TaskSpec, row: Mapping[str, Any], options: list[str], problems: set[str], untyped: bool
) -> int | None:
    value = lookup(row, spec.answer.field)
    if _is_blank(value):
        problems.add("missing_answer")
        return None
    encoding = spec.answer.encoding
    if encoding in ("index0", "index1"):
        index = _integer(value, untyped)
        if index is None:
            problems.add("wrong_type")
            return None
        index -= encoding == "index1"
        if not 0 <= index < len(options):
            problems.add("answer_out_of_range")
            return None
        return index
    if not isinstance(value, str | int) or isinstance(value, bool):
        problems.add("wrong_type")
        return None
    if encoding == "letter" or (encoding == "key" and spec.options.layout == "dict"):
        letter = str(value).strip().upper() if str(value).strip().upper() in spec.letters else str(value).strip()
        if letter not in spec.letters:
            problems.add("answer_not_in_options")
            return None
        index = spec.letters.index(letter)
        if index >= len(options):
            problems.add("answer_out_of_range")
            return None
        return index
    if encoding == "key":
        keys = [str(item.get(spec.options.key)).strip() for item in lookup(row, spec.options.field)]
        matches = [i for i, key in enumerate(keys) if key == str(value).strip()]
    else:
        matches = [i for i, option in enumerate(options) if normalise_text(option) == normalise_text(value)]
    if not matches:
        problems.add("answer_not_in_options")
        return None
    if len(matches) > 1:
        problems.add("ambiguous_answer")
        return None
    return matches[0]


def _integer(value: Any, untyped: bool) -> int | None:
    if isinstance(value, bool):
        return None
    if untyped and isinstance(value, str):  # a CSV column pandas could not read as numbers (another cell is text)
        try:
            return int(value)
        except ValueError:
            return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():  # CSV columns with nulls are read as floats
        return int(value)
    return None


def _subject(spec: TaskSpec, row: Mapping[str, Any]) -> str | None:
    if spec.subject is not None:
        subject = _optional_text(lookup(row, spec.subject))
        if subject is not None:
            return subject.strip()
    config = row.get(CONFIG_COLUMN)
    return str(config) if config else None


def _empty(spec: TaskSpec) -> datasets.Dataset:
    if spec.type != "mcq":
        return empty_rows(spec)
    return datasets.Dataset.from_dict({name: [] for name in CANONICAL_COLUMNS}, features=CANONICAL_FEATURES)
