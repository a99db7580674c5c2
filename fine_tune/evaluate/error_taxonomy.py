"""Why an answer was wrong or unusable: exactly one category per such answer, from its record.

An answer is wrong or unusable unless it is schema-valid and correct (`correct_and_schema_valid`), so the counts of
one model add up to `n - correct_and_schema_valid`. The categories are checked in the order of `CATEGORIES`, the first
that applies wins:

| category | the answer |
|---|---|
| `truncated` | hit the generation budget (`stopped` false) before a schema-valid object was complete |
| `empty` | is blank |
| `thinking` | thought out loud (`<think>` tags) instead of answering |
| `code_fence` | wrapped the object in a markdown code fence |
| `extra_text` | is a valid object followed by more text |
| `not_json` | is not JSON, or JSON that is not an object |
| `letter_outside_set` | names a single letter that is not one of the task's letters (an `E` on a 4-option task) |
| `schema_error` | is an object that breaks the schema otherwise (keys, category type, confidence, reason) |
| `wrong_confident` | is schema-valid, names a wrong letter, with confidence >= 0.8 |
| `wrong_unsure` | is schema-valid, names a wrong letter, with confidence < 0.8 |
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fine_tune.task import parsing

CONFIDENT = 0.8  # the study's line between a confident and an unsure wrong answer

TRUNCATED = "truncated"
EMPTY = "empty"
THINKING = "thinking"
CODE_FENCE = "code_fence"
EXTRA_TEXT = "extra_text"
NOT_JSON = "not_json"
LETTER_OUTSIDE_SET = "letter_outside_set"
SCHEMA_ERROR = "schema_error"
WRONG_CONFIDENT = "wrong_confident"
WRONG_UNSURE = "wrong_unsure"

CATEGORIES: tuple[str, ...] = (
    TRUNCATED,
    EMPTY,
    THINKING,
    CODE_FENCE,
    EXTRA_TEXT,
    NOT_JSON,
    LETTER_OUTSIDE_SET,
    SCHEMA_ERROR,
    WRONG_CONFIDENT,
    WRONG_UNSURE,
)

# the strict parser's failure reason -> the category, for answers that did not hit the budget
_BY_FAILURE: dict[str, str] = {
    parsing.EMPTY: EMPTY,
    parsing.THINK_BLOCK: THINKING,
    parsing.CODE_FENCE: CODE_FENCE,
    parsing.TRUNCATED: TRUNCATED,
    parsing.TRAILING_TEXT: EXTRA_TEXT,
    parsing.NOT_JSON: NOT_JSON,
    parsing.NOT_OBJECT: NOT_JSON,
    parsing.WRONG_KEYS: SCHEMA_ERROR,
    parsing.BAD_CATEGORY: SCHEMA_ERROR,
    parsing.BAD_CONFIDENCE: SCHEMA_ERROR,
    parsing.BAD_REASON: SCHEMA_ERROR,
    parsing.EMPTY_REASON: SCHEMA_ERROR,
}
_LETTER_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def error_category(record: Mapping[str, Any], letters: Sequence[str]) -> str | None:
    """The category of one prediction record (`fine_tune.evaluate.runs.prediction_records`); None when the answer is
    schema-valid and correct."""
    if record["schema_valid"]:
        if record["correct"]:
            return None
        return WRONG_CONFIDENT if record["confidence"] >= CONFIDENT else WRONG_UNSURE
    if not record.get("stopped", True):
        return TRUNCATED
    failure = record["failure"]
    if failure == parsing.BAD_CATEGORY and _names_another_letter(record["raw_output"], letters):
        return LETTER_OUTSIDE_SET
    return _BY_FAILURE[failure]


def error_taxonomy(records: Sequence[Mapping[str, Any]], letters: Sequence[str]) -> dict[str, int]:
    """Category -> count over one model's records, every category listed (0 where none)."""
    counts = dict.fromkeys(CATEGORIES, 0)
    for record in records:
        category = error_category(record, letters)
        if category is not None:
            counts[category] += 1
    return counts


def _names_another_letter(raw_output: str, letters: Sequence[str]) -> bool:
    try:
        category = json.loads(raw_output).get("predicted_category")
    except (ValueError, AttributeError):
        return False
    return isinstance(category, str) and category in _LETTER_ALPHABET and category not in letters
