"""Per-sample scores and the aggregate eval metrics, all read through `fine_tune.task.parsing`.

A sample is `correct` when its strictly parsed category equals the gold letter, even if another field breaks the
schema; `accuracy_on_schema` restricts accuracy to schema-valid responses. Rates that would divide by zero are None
(never 0 or NaN), so the metrics stay valid JSON.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fine_tune.task.parsing import is_letter, parse_response, parse_response_lenient
from fine_tune.task.prompts import LETTERS


@dataclass
class SampleScore:
    json_valid: bool
    schema_valid: bool
    correct: bool
    category: str | None
    confidence: float | None
    failure: str | None
    lenient_json_valid: bool
    lenient_schema_valid: bool
    lenient_correct: bool
    reason: str | None = None  # the strict answer's reason (None when it breaks the contract before the reason)


def score_sample(completion: Any, gold_letter: str, letters: Sequence[str] = LETTERS) -> SampleScore:
    """Strict and lenient scores of one completion; a category outside the task's `letters` is a schema failure."""
    if not is_letter(gold_letter, letters):
        raise ValueError(f"gold letter must be one of {tuple(letters)}, got {gold_letter!r}")
    strict = parse_response(completion, letters)
    lenient = parse_response_lenient(completion, letters)
    return SampleScore(
        json_valid=strict.json_valid,
        schema_valid=strict.schema_valid,
        correct=strict.category == gold_letter,
        category=strict.category,
        confidence=strict.confidence,
        failure=strict.failure,
        lenient_json_valid=lenient.json_valid,
        lenient_schema_valid=lenient.schema_valid,
        lenient_correct=lenient.category == gold_letter,
        reason=strict.reason,
    )


def aggregate_metrics(scores: Iterable[SampleScore]) -> dict[str, Any]:
    """Counts, rates over all n samples, accuracy among schema-valid ones, and the strict failure-reason counts."""
    scores = list(scores)
    n = len(scores)
    counts = {
        "correct": sum(s.correct for s in scores),
        "json_valid": sum(s.json_valid for s in scores),
        "schema_valid": sum(s.schema_valid for s in scores),
        "correct_and_schema_valid": sum(s.correct and s.schema_valid for s in scores),
        "lenient_correct": sum(s.lenient_correct for s in scores),
        "lenient_schema_valid": sum(s.lenient_schema_valid for s in scores),
    }
    return {
        "n": n,
        **counts,
        "accuracy": _rate(counts["correct"], n),
        "valid_json_rate": _rate(counts["json_valid"], n),
        "schema_pass_rate": _rate(counts["schema_valid"], n),
        "accuracy_on_schema": _rate(counts["correct_and_schema_valid"], counts["schema_valid"]),
        "lenient_accuracy": _rate(counts["lenient_correct"], n),
        "lenient_schema_pass_rate": _rate(counts["lenient_schema_valid"], n),
        "failure_counts": dict(Counter(s.failure for s in scores if s.failure is not None).most_common()),
    }


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None
