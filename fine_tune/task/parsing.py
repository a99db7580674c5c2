"""The one parser for model responses: rewards and metrics both read completions through this module.

The contract (`parse_response`) is strict: the completion, stripped of surrounding whitespace, must be exactly one JSON
object with exactly the keys of `RESPONSE_KEYS`:

- `predicted_category`: exactly one of "A".."D" as a string (lowercase or padded letters are rejected);
- `confidence`: a JSON number (not a boolean) in [0, 1];
- `reason`: a string that is not empty or whitespace.

`parse_response_lenient` only exists to compare with upstream's lenient numbers (see its docstring).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fine_tune.task.prompts import LETTERS
from fine_tune.task.spec import OPEN_RESPONSE_KEYS, RESPONSE_KEYS

EMPTY = "empty"
THINK_BLOCK = "think_block"
CODE_FENCE = "code_fence"
TRUNCATED = "truncated"
TRAILING_TEXT = "trailing_text"
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
WRONG_KEYS = "wrong_keys"
BAD_CATEGORY = "bad_category"
BAD_CONFIDENCE = "bad_confidence"
BAD_REASON = "bad_reason"
EMPTY_REASON = "empty_reason"
BAD_ANSWER = "bad_answer"  # an open task's JSON "answer" is not a non-empty string

FAILURE_REASONS: tuple[str, ...] = (
    EMPTY,  # nothing but whitespace
    THINK_BLOCK,  # contains a <think> or </think> tag (and is not a valid object)
    CODE_FENCE,  # contains ``` (and is not a valid object)
    TRUNCATED,  # starts with "{" but the text ends inside the object (unclosed brace, bracket or string)
    TRAILING_TEXT,  # a valid JSON object followed by more text
    NOT_JSON,  # anything else that is not JSON, including the NaN/Infinity/-Infinity literals
    NOT_OBJECT,  # valid JSON, but not an object
    WRONG_KEYS,  # an object whose keys are not exactly RESPONSE_KEYS (missing, extra or duplicated)
    BAD_CATEGORY,  # predicted_category is not exactly one of the task's letters (LETTERS for MedMCQA)
    BAD_CONFIDENCE,  # confidence is not a number in [0, 1] (booleans are not numbers)
    BAD_REASON,  # reason is not a string
    EMPTY_REASON,  # reason is an empty or whitespace-only string
)

_THINK_TAG = re.compile(r"</?think>", re.IGNORECASE)
# Where a JSON object can begin: "{" then optional whitespace then a key's quote or the closing brace.
_OBJECT_START = re.compile(r"\{\s*[\"}]")
# The lenient search decodes at most this many characters from each candidate "{" (the answer object is ~200
# characters; its reason is capped at 250): a failed decode costs at most this much, so the search stays linear.
MAX_OBJECT_CHARS = 8192


@dataclass(frozen=True)
class ParsedResponse:
    json_valid: bool
    schema_valid: bool
    category: str | None
    confidence: float | None
    reason: str | None
    failure: str | None  # None iff schema_valid, else one of FAILURE_REASONS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def completion_text(completion: Any) -> str:
    """The generated text of a completion, whatever its form; never raises.

    Accepts a string, TRL's conversational form (a list of message dicts: the assistant messages' texts are joined),
    a single message dict, or anything else (None gives "", other scalars their `str()`). A message whose reasoning
    was split off by the tokenizer's response parser (`reasoning_content` / `thinking`) gets it back as a
    `<think>...</think>` prefix, so the strict contract still sees that the model thought out loud.
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, bytes):
        return completion.decode("utf-8", errors="replace")
    if isinstance(completion, Mapping):
        return _message_text(completion)
    if isinstance(completion, (list, tuple)):
        return "".join(_item_text(item) for item in completion)
    try:
        return str(completion)
    except Exception:
        return ""


def _item_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping) and item.get("role", "assistant") == "assistant":
        return _message_text(item)
    return ""


def _message_text(message: Mapping[Any, Any]) -> str:
    reasoning = message.get("reasoning_content") or message.get("thinking")
    reasoning = reasoning if isinstance(reasoning, str) else ""
    content = message.get("content")
    if isinstance(content, list):  # multimodal content parts: [{"type": "text", "text": ...}, ...]
        content = "".join(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    text = content if isinstance(content, str) else ""
    return f"<think>{reasoning}</think>{text}" if reasoning.strip() else text


def parse_response(completion: Any, letters: Sequence[str] = LETTERS) -> ParsedResponse:
    """Strict parse: the stripped completion must be exactly one JSON object meeting the contract, its category one
    of the task's `letters`."""
    text = completion_text(completion).strip()
    if not text:
        return _failed(EMPTY)
    try:
        value, end = _decode_at(text, 0)
    except (ValueError, RecursionError):
        return _failed(_unparseable_reason(text))
    if end < len(text):
        return _failed(TRAILING_TEXT if isinstance(value, dict) else _unparseable_reason(text))
    if not isinstance(value, dict):
        return _failed(NOT_OBJECT)
    return _check_object(value, letters)


@dataclass(frozen=True)
class OpenAnswer:
    """An open task's answer: the text scored against the reference ("" when a JSON answer breaks the contract),
    and, for answer_format json, the same strict checks as multiple-choice answers (None for plain text)."""

    answer: str
    json_valid: bool | None
    schema_valid: bool | None
    confidence: float | None
    failure: str | None


def parse_open_response(completion: Any, answer_format: str = "json") -> OpenAnswer:
    """Plain text: the stripped completion (a think block removed). JSON: the stripped completion must be exactly one
    object with exactly the keys "answer" (a non-empty string) and "confidence" (a number in [0, 1])."""
    text = completion_text(completion).strip()
    if answer_format == "text":
        return OpenAnswer(strip_think(text).strip(), None, None, None, None)
    if not text:
        return OpenAnswer("", False, False, None, EMPTY)
    try:
        value, end = _decode_at(text, 0)
    except (ValueError, RecursionError):
        return OpenAnswer("", False, False, None, _unparseable_reason(text))
    if end < len(text) or not isinstance(value, dict):
        failure = TRAILING_TEXT if isinstance(value, dict) else NOT_OBJECT
        return OpenAnswer("", False, False, None, failure)
    answer_key, confidence_key = OPEN_RESPONSE_KEYS
    answer, confidence = value.get(answer_key), _valid_confidence(value.get(confidence_key))
    if isinstance(value, _DuplicateKeys) or set(value) != set(OPEN_RESPONSE_KEYS):
        failure = WRONG_KEYS
    elif not isinstance(answer, str) or not answer.strip():
        failure = BAD_ANSWER
    elif confidence is None:
        failure = BAD_CONFIDENCE
    else:
        return OpenAnswer(answer.strip(), True, True, confidence, None)
    return OpenAnswer("", True, False, confidence, failure)


def parse_response_lenient(completion: Any, letters: Sequence[str] = LETTERS) -> ParsedResponse:
    """Lenient parse, only to compare with upstream's lenient numbers; `parse_response` is the contract.

    A completion whose stripped text is exactly one JSON object gets the strict result. Otherwise <think>...</think>
    blocks are removed (also reasoning opened by the template and closed by a bare </think>, and an unterminated
    <think>, which runs to the end of the text; tags are matched anywhere, even inside JSON strings), and the first
    JSON object found in what is left is checked with the strict field checks, any text around it ignored: so ``` /
    ```json fences, prose and trailing text are all skipped. `json_valid` here means "an object was found"; when none
    is, the failure is `empty`, `truncated` or `not_json`. Every strictly valid response is leniently valid, with the
    same fields.
    """
    strict = parse_response(completion, letters)
    if strict.json_valid:
        return strict
    text = strip_think(completion_text(completion)).strip()
    if not text:
        return _failed(EMPTY)
    for start in (m.start() for m in _OBJECT_START.finditer(text)):
        try:
            value, _ = _decode_at(text[start : start + MAX_OBJECT_CHARS], 0)
        except (ValueError, RecursionError):
            continue
        return _check_object(value, letters)
    first_brace = text.find("{")
    return _failed(TRUNCATED if first_brace >= 0 and _ends_inside_value(text[first_brace:]) else NOT_JSON)


def strip_think(text: str) -> str:
    """The text without reasoning, in one pass over its think tags: each <think> up to the next </think>, then
    everything up to a </think> left unopened (the template opened it), then an unclosed <think> to the end."""
    kept, cursor, opened = [], 0, None
    for tag in _THINK_TAG.finditer(text):
        closing = tag.group().startswith("</")
        if opened is None and not closing:
            opened = tag.start()
        elif opened is not None and closing:
            kept.append(text[cursor:opened])
            cursor, opened = tag.end(), None
    kept.append(text[cursor:])
    text = "".join(kept)
    unopened = re.search(r"</think>", text, re.IGNORECASE)
    if unopened is not None:
        text = text[unopened.end() :]
    unclosed = re.search(r"<think>", text, re.IGNORECASE)
    return text[: unclosed.start()] if unclosed is not None else text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class _DuplicateKeys(dict):
    """A JSON object in which some key appeared more than once (the last value is kept)."""


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    return obj if len(obj) == len(pairs) else _DuplicateKeys(obj)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_object_from_pairs)


def _decode_at(text: str, start: int) -> tuple[Any, int]:
    """Standard JSON (no NaN/Infinity) decoded from `start`; returns the value and the index just past it."""
    return _DECODER.raw_decode(text, start)


def _unparseable_reason(text: str) -> str:
    if _THINK_TAG.search(text):
        return THINK_BLOCK
    if "```" in text:
        return CODE_FENCE
    if text.startswith("{") and _ends_inside_value(text):
        return TRUNCATED
    return NOT_JSON


def _ends_inside_value(text: str) -> bool:
    """Whether the text ends inside a string or with a brace/bracket still open, i.e. it was cut off."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return in_string or depth > 0


def _check_object(obj: dict[Any, Any], letters: Sequence[str] = LETTERS) -> ParsedResponse:
    category = _valid_category(obj.get("predicted_category"), letters)
    confidence = _valid_confidence(obj.get("confidence"))
    raw_reason = obj.get("reason")
    reason = raw_reason if isinstance(raw_reason, str) and raw_reason.strip() else None
    if isinstance(obj, _DuplicateKeys) or set(obj) != set(RESPONSE_KEYS):
        failure = WRONG_KEYS
    elif category is None:
        failure = BAD_CATEGORY
    elif confidence is None:
        failure = BAD_CONFIDENCE
    elif not isinstance(raw_reason, str):
        failure = BAD_REASON
    elif reason is None:
        failure = EMPTY_REASON
    else:
        failure = None
    return ParsedResponse(
        json_valid=True,
        schema_valid=failure is None,
        category=category,
        confidence=confidence,
        reason=reason,
        failure=failure,
    )


def is_letter(value: Any, letters: Sequence[str] = LETTERS) -> bool:
    """Whether `value` is exactly one of the task's `letters` (a str; no case folding or stripping)."""
    return isinstance(value, str) and value in letters


def _valid_category(value: Any, letters: Sequence[str]) -> str | None:
    return value if is_letter(value, letters) else None


def _valid_confidence(value: Any) -> float | None:
    """A JSON number in [0, 1]; the range check also rejects NaN, infinities (e.g. 1e400) and huge integers."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return None


def _failed(failure: str) -> ParsedResponse:
    return ParsedResponse(
        json_valid=False, schema_valid=False, category=None, confidence=None, reason=None, failure=failure
    )
