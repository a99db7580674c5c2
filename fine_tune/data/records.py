"""Reading JSON files record by record, so that one bad line or value refuses that record alone, with its line.

A record that is not one JSON object, or whose bytes are not UTF-8, is refused (`malformed_line`, `not_utf8`); so is
one whose value in a column has a JSON type that clashes with the column's other rows (`wrong_type`: a `"2"` among
integers is a schema mix-up that is not guessed). The rows that remain are judged by `fine_tune.data.normalise`.
"""

from __future__ import annotations

import codecs
import json
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from fine_tune.errors import DatasetError

MALFORMED_LINE = "malformed_line"
NOT_UTF8 = "not_utf8"
WRONG_TYPE = "wrong_type"


@dataclass(frozen=True)
class RefusedRecord:
    """A record that could not become a row: where it is (line or row), why, and its id when it has one."""

    where: str
    reason: str
    detail: str

    def label(self) -> str:
        return f"{self.where} ({self.detail})"


def read_json_rows(path: Path) -> tuple[datasets.Dataset, list[RefusedRecord]]:
    """Any task's .jsonl/.json file (see `json_records`): every JSON object is a row with its own keys.

    A record that is not one JSON object, or that cannot be read, is refused alone; so is one whose value in some
    column has a type that clashes with that column's other rows (`type_clashes`). Refused records are in file order.
    """
    rows: list[dict[str, Any]] = []
    wheres: list[str] = []
    positions: list[int] = []  # each row's place among the file's records
    refused: list[tuple[int, RefusedRecord]] = []
    for position, (where, record, problem) in enumerate(json_records(path)):
        if problem is None and not isinstance(record, dict):
            problem = not_an_object(where, record)
        if problem is not None:
            refused.append((position, problem))
            continue
        rows.append(record)
        wheres.append(where)
        positions.append(position)
    clashes: dict[int, RefusedRecord] = {}
    for key in dict.fromkeys(key for row in rows for key in row):
        for index, detail in type_clashes(key, [row.get(key) for row in rows]):
            clashes.setdefault(index, RefusedRecord(wheres[index], WRONG_TYPE, detail))
    refused += [(positions[index], record) for index, record in clashes.items()]
    try:
        dataset = _rows_dataset([row for index, row in enumerate(rows) if index not in clashes])
    except (pa.ArrowException, OverflowError) as error:
        raise DatasetError(f"{path}: the records do not share one schema ({type(error).__name__}: {error})") from None
    return dataset, [record for _, record in sorted(refused, key=lambda item: item[0])]


def type_clashes(column: str, values: list[Any]) -> list[tuple[int, str]]:
    """(row index, why) for the values of `column` whose JSON type clashes with the column's, at any depth.

    A column's type at each place (`options.A`, `choices[]`, ...) is the most frequent one there (ties: first seen);
    integers and floats are one type (number), nulls fit any, and a boolean is never a number (Arrow would silently
    store `true` as 1.0 in a number column). A value mixing types inside itself (`[1, "a"]`) clashes too.
    """
    kinds: list[dict[str, str]] = []
    clashes: dict[int, str] = {}
    counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for index, value in enumerate(values):
        seen, mixed = _value_kinds(value, column)
        kinds.append(seen)
        if mixed:
            clashes[index] = mixed
            continue
        for place, kind in seen.items():
            counts[place][kind] += 1
    column_kinds = {place: counter.most_common(1)[0][0] for place, counter in counts.items()}
    for index, seen in enumerate(kinds):
        wrong = [] if index in clashes else [(p, k) for p, k in seen.items() if k != column_kinds[p]]
        if wrong:
            place, kind = wrong[0]
            clashes[index] = f"{place} is {kind}, but {column_kinds[place]} in the column's other rows"
    return sorted(clashes.items())


def json_records(path: Path) -> Iterator[tuple[str, Any, RefusedRecord | None]]:
    """Every record of a .jsonl/.json file, in order: (where, parsed value, None) or (where, None, why refused).

    A file that parses whole as a JSON array is its elements (`record <i>`); a file whose first line opens an array
    it does not close there is one JSON array, refused whole (one line naming the first bad byte or position) when
    it does not parse. Anything else is JSON lines (`line <n>`, blank lines skipped), each judged alone: malformed
    or truncated JSON and non-UTF-8 bytes refuse that line only. A JSON object spanning several lines is refused
    whole: it is neither a record per line nor an array of records.
    """
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    if not data.strip():
        raise DatasetError(f"{path}: empty file (no rows)")
    first_line = data.strip().split(b"\n", 1)[0]
    first_parses = _parse(first_line) is not None
    # JSON lines (the usual case) are never parsed whole: only an array, or a first line that is not JSON alone
    whole = _parse(data) if first_line.lstrip()[:1] == b"[" or not first_parses else None
    if whole == []:
        raise DatasetError(f"{path}: an empty JSON array (no rows)")
    if isinstance(whole, list):
        return ((f"record {index}", record, None) for index, record in enumerate(whole))
    if isinstance(whole, dict):
        lines = len(data.strip().splitlines())
        raise DatasetError(
            f"{path}: one JSON object spanning {lines} lines (keys: {', '.join(list(whole)[:5])}); expected one "
            "object per line (JSON lines) or a JSON array of objects"
        )
    if first_line.lstrip()[:1] == b"[" and not first_parses:
        bad = first_non_utf8(data)
        if bad:
            raise DatasetError(f"{path}: {bad}; re-save the file as UTF-8")
        raise DatasetError(f"{path}: not a valid JSON array ({_json_error(data)})")
    return _json_lines(data)


def not_an_object(where: str, record: Any) -> RefusedRecord:
    return RefusedRecord(where, MALFORMED_LINE, f"a JSON {type(record).__name__}, not an object")


def first_non_utf8(data: bytes) -> str | None:
    """'line L, column C: byte 0xNN' of the first byte that is not UTF-8, or None when all of `data` decodes."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = data.rfind(b"\n", 0, error.start) + 1
        line = data.count(b"\n", 0, error.start) + 1
        return f"line {line}, column {error.start - line_start + 1}: byte 0x{data[error.start]:02x} is not UTF-8"
    return None


def _json_lines(data: bytes) -> Iterator[tuple[str, Any, RefusedRecord | None]]:
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"line {number}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            detail = f"byte 0x{raw[error.start]:02x} at column {error.start + 1} is not UTF-8"
            yield where, None, RefusedRecord(where, NOT_UTF8, detail)
            continue
        try:
            yield where, json.loads(text), None
        except (ValueError, RecursionError) as error:
            yield where, None, RefusedRecord(where, MALFORMED_LINE, f"not JSON: {str(error).split(':')[0]}")


def _parse(data: bytes) -> Any:
    """The JSON value of `data`, or None when it is not one JSON value (or not UTF-8)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _json_error(data: bytes) -> str:
    try:
        json.loads(data)
    except (ValueError, RecursionError) as error:
        return str(error)
    return "valid JSON"


def _value_kinds(value: Any, column: str) -> tuple[dict[str, str], str | None]:
    """{place: JSON type} of `value` and of everything inside it (nulls have none), and why it mixes types inside
    itself, if it does."""
    if not isinstance(value, dict | list):  # the usual case, kept cheap
        kind = _scalar_kind(value)
        return ({column: kind} if kind else {}), None
    seen: dict[str, str] = {}
    queue = deque([(column, value)])
    while queue:
        place, item = queue.popleft()
        if isinstance(item, dict):
            kind = "object"
            queue.extend((f"{place}.{key}", inner) for key, inner in item.items())
        elif isinstance(item, list):
            kind = "list"
            queue.extend((f"{place}[]", inner) for inner in item)
        else:
            kind = _scalar_kind(item)
        if kind and seen.setdefault(place, kind) != kind:
            return seen, f"{place} mixes {seen[place]} and {kind}"
    return seen, None


def _scalar_kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "number" if -(2**63) <= value < 2**63 else "an integer beyond 64 bits"
    return "number" if isinstance(value, float) else "string"


def _rows_dataset(rows: list[dict[str, Any]]) -> datasets.Dataset:
    """Rows with any keys as a Dataset: every key of any row is a column (null where a row lacks it)."""
    keys = dict.fromkeys(key for row in rows for key in row)
    return datasets.Dataset.from_dict({key: [row.get(key) for row in rows] for key in keys})
