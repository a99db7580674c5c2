"""Reading MedMCQA files record by record, so that one bad line or value refuses that record alone, with its line.

Type policy for `cop` (the answer index), applied to every row of every format:
- an integer is the answer; a float that is exactly an integer (`2.0`) is that integer: pandas writes an integer
  column holding one missing value as float, so `2.0` is never a different answer from `2`;
- a missing value (null, NaN, an empty CSV cell) is that row's missing answer (`cop_out_of_range`, as before);
- in typed formats (JSON, Parquet, Hub datasets) a string (`"2"`), a boolean or a non-integral float is refused as
  `wrong_type`: an answer written as text is a schema mix-up (a letter? 1-based?) that is not guessed; CSV has no
  types, so there a cell must read as an integer.
"""

from __future__ import annotations

import codecs
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from fine_tune.errors import DatasetError

logger = logging.getLogger(__name__)

MEDMCQA_COLUMNS: tuple[str, ...] = (
    "id",
    "question",
    "opa",
    "opb",
    "opc",
    "opd",
    "cop",
    "choice_type",
    "exp",
    "subject_name",
    "topic_name",
)
TEXT_COLUMNS: tuple[str, ...] = ("question", "opa", "opb", "opc", "opd")
MEDMCQA_FEATURES = datasets.Features(
    {c: datasets.Value("int64") if c == "cop" else datasets.Value("string") for c in MEDMCQA_COLUMNS}
)
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


def judge_cop(value: Any, *, text: bool = False) -> tuple[int | None, str | None]:
    """(answer, problem) for one `cop` value under the module's type policy; `text` for untyped CSV cells."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None, None
    if isinstance(value, bool):
        return None, f"cop is a boolean ({value!r})"
    if isinstance(value, int):
        return value, None
    if isinstance(value, float):
        return (int(value), None) if value.is_integer() else (None, f"cop is not an integer ({value!r})")
    if isinstance(value, str) and text:
        stripped = value.strip()
        if not stripped:
            return None, None
        try:
            return int(stripped), None
        except ValueError:
            return None, f"cop is not an integer ({value!r})"
    return None, f"cop is a {type(value).__name__} ({value!r}), not an integer; strings are refused, not guessed"


def judge_record(record: Any, where: str) -> tuple[dict[str, Any] | None, RefusedRecord | None]:
    """A parsed JSON record as a row of MEDMCQA_COLUMNS, or why it cannot be one (the row's own fields only)."""
    if not isinstance(record, dict):
        return None, RefusedRecord(where, MALFORMED_LINE, f"a JSON {type(record).__name__}, not an object")
    where = f"{where}, id {record['id']}" if record.get("id") not in (None, "") else where
    for column in TEXT_COLUMNS:
        value = record.get(column)
        if value is not None and not isinstance(value, str):
            return None, RefusedRecord(where, WRONG_TYPE, f"{column} is a {type(value).__name__}, not a string")
    cop, problem = judge_cop(record.get("cop"))
    if problem:
        return None, RefusedRecord(where, WRONG_TYPE, problem)
    row = {c: _optional_text(record.get(c)) for c in MEDMCQA_COLUMNS}
    row["cop"] = cop
    return row, None


def read_json_records(path: Path) -> tuple[datasets.Dataset, list[RefusedRecord]]:
    """A .jsonl file (one object per line) or a .json file (a JSON array of objects, or JSON lines)."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    if not data.strip():
        raise DatasetError(f"{path}: empty file (no rows)")
    records = _json_array(path, data) if data.lstrip()[:1] == b"[" else _json_lines(data)
    rows: list[dict[str, Any]] = []
    refused: list[RefusedRecord] = []
    present: set[str] = set()
    for where, record, problem in records:
        if problem is not None:
            refused.append(problem)
            continue
        row, problem = judge_record(record, where)
        if problem is not None:
            refused.append(problem)
            continue
        present.update(record)
        rows.append(row)
    missing = [c for c in (*TEXT_COLUMNS, "cop") if c not in present] if rows else []
    if missing:
        raise DatasetError(f"{path}: missing MedMCQA column(s): {', '.join(missing)} (in every row)")
    extra = sorted(str(key) for key in present if key not in MEDMCQA_COLUMNS)
    if extra:
        logger.info("ignoring non-MedMCQA column(s): %s", ", ".join(extra))
    columns = {c: [row[c] for row in rows] for c in MEDMCQA_COLUMNS}
    return datasets.Dataset.from_dict(columns, features=MEDMCQA_FEATURES), refused


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


def _json_array(path: Path, data: bytes) -> Iterator[tuple[str, Any, RefusedRecord | None]]:
    bad = first_non_utf8(data)
    if bad:
        raise DatasetError(f"{path}: {bad}; re-save the file as UTF-8")
    try:
        records = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise DatasetError(f"{path}: not a valid JSON array ({error})") from None
    for index, record in enumerate(records):
        yield f"record {index}", record, None


def _optional_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)
