"""fine_tune.evaluate.error_taxonomy: every wrong or unusable answer in exactly one category, counts that add up."""

import json

import pytest

from fine_tune.evaluate.error_taxonomy import CATEGORIES, error_category, error_taxonomy
from fine_tune.task.scoring import score_sample

LETTERS = ("A", "B", "C", "D")


def record(raw: str, gold: str = "B", stopped: bool = True, letters=LETTERS) -> dict:
    score = score_sample(raw, gold, letters)
    return {
        "raw_output": raw,
        "schema_valid": score.schema_valid,
        "correct": score.correct,
        "failure": score.failure,
        "confidence": score.confidence,
        "stopped": stopped,
    }


def answer(letter, confidence=0.9, reason="because"):
    return json.dumps({"predicted_category": letter, "confidence": confidence, "reason": reason})


@pytest.mark.parametrize(
    ("raw", "stopped", "expected"),
    [
        (answer("B"), True, None),
        (answer("A", 0.8), True, "wrong_confident"),
        (answer("A", 0.79), True, "wrong_unsure"),
        ('{"predicted_category": "B", "confidence": 0.9, "reas', False, "truncated"),
        ('{"predicted_category": "B", "confidence": 0.9, "reas', True, "truncated"),
        (answer("B") + " and that is all", False, "truncated"),
        ("   ", True, "empty"),
        ("<think>hmm</think>" + answer("B"), True, "thinking"),
        ("```json\n" + answer("B") + "\n```", True, "code_fence"),
        (answer("B") + " I am sure.", True, "extra_text"),
        ("The answer is B.", True, "not_json"),
        ("[1, 2]", True, "not_json"),
        (answer("E"), True, "letter_outside_set"),
        (answer("b"), True, "schema_error"),
        (answer(["B"]), True, "schema_error"),
        (answer("B", 1.5), True, "schema_error"),
        (answer("B", reason=""), True, "schema_error"),
        ('{"predicted_category": "B"}', True, "schema_error"),
    ],
)
def test_each_answer_falls_in_one_documented_category(raw, stopped, expected):
    assert error_category(record(raw, stopped=stopped), LETTERS) == expected


def test_a_letter_of_a_larger_task_is_outside_a_smaller_tasks_set_only():
    assert error_category(record(answer("E"), letters=("A", "B", "C", "D", "E")), ("A", "B", "C", "D", "E")) == (
        "wrong_confident"
    )
    assert error_category(record(answer("D"), letters=("A", "B", "C")), ("A", "B", "C")) == "letter_outside_set"


def test_counts_add_up_to_the_wrong_or_unusable_answers():
    raws = [answer("B"), answer("A"), answer("A", 0.1), "nope", "", answer("E"), answer("B", 2.0), answer("B")]
    records = [record(raw) for raw in raws]
    counts = error_taxonomy(records, LETTERS)
    assert list(counts) == list(CATEGORIES)
    usable_and_right = sum(r["schema_valid"] and r["correct"] for r in records)
    assert sum(counts.values()) == len(records) - usable_and_right == 6
    assert counts["wrong_confident"] == counts["wrong_unsure"] == counts["not_json"] == counts["empty"] == 1
    assert counts["letter_outside_set"] == counts["schema_error"] == 1
