import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fine_tune.task.scoring import SampleScore, aggregate_metrics, score_sample


def response(letter, confidence=0.7, reason="r"):
    return json.dumps({"predicted_category": letter, "confidence": confidence, "reason": reason})


def test_score_valid_correct_sample():
    score = score_sample([{"role": "assistant", "content": response("A")}], "A")
    assert score == SampleScore(
        json_valid=True,
        schema_valid=True,
        correct=True,
        category="A",
        confidence=0.7,
        failure=None,
        lenient_json_valid=True,
        lenient_schema_valid=True,
        lenient_correct=True,
        reason="r",
    )


def test_score_counts_a_correct_letter_even_when_the_schema_fails():
    score = score_sample(response("C", confidence=3), "C")
    assert (score.correct, score.schema_valid, score.failure, score.confidence) == (
        True,
        False,
        "bad_confidence",
        None,
    )


def test_score_lenient_fields_come_from_the_lenient_parser():
    score = score_sample(f"```json\n{response('B')}\n```", "B")
    assert (score.json_valid, score.correct, score.category, score.failure) == (False, False, None, "code_fence")
    assert (score.lenient_json_valid, score.lenient_schema_valid, score.lenient_correct) == (True, True, True)


@pytest.mark.parametrize("gold", ["a", "E", None, ""])
def test_score_rejects_an_invalid_gold_letter(gold):
    with pytest.raises(ValueError, match="gold letter"):
        score_sample(response("A"), gold)


def test_aggregate_hand_computed():
    samples = [
        (response("A"), "A"),  # correct, schema-valid
        (response("B"), "A"),  # wrong, schema-valid
        (response("C", confidence=2), "C"),  # correct, json-valid, schema-invalid
        (f"{response('D')} done", "D"),  # trailing text: strict nothing, lenient correct
        ("", "A"),  # empty
    ]
    metrics = aggregate_metrics(score_sample(c, g) for c, g in samples)
    assert metrics == {
        "n": 5,
        "correct": 2,
        "json_valid": 3,
        "schema_valid": 2,
        "correct_and_schema_valid": 1,
        "lenient_correct": 3,
        "lenient_schema_valid": 3,
        "accuracy": 2 / 5,
        "valid_json_rate": 3 / 5,
        "schema_pass_rate": 2 / 5,
        "accuracy_on_schema": 1 / 2,
        "lenient_accuracy": 3 / 5,
        "lenient_schema_pass_rate": 3 / 5,
        "failure_counts": {"bad_confidence": 1, "trailing_text": 1, "empty": 1},
    }


def test_accuracy_on_schema_is_none_without_schema_valid_samples():
    metrics = aggregate_metrics([score_sample("B", "B"), score_sample("", "A")])
    assert metrics["schema_valid"] == 0
    assert metrics["accuracy_on_schema"] is None
    assert metrics["accuracy"] == 0.0


def test_empty_aggregate_has_none_rates():
    metrics = aggregate_metrics([])
    assert metrics["n"] == 0
    rates = ["accuracy", "valid_json_rate", "schema_pass_rate", "accuracy_on_schema", "lenient_accuracy"]
    assert all(metrics[rate] is None for rate in [*rates, "lenient_schema_pass_rate"])
    json.dumps(metrics, allow_nan=False)


@given(st.lists(st.tuples(st.text(max_size=30) | st.sampled_from("ABCD").map(response), st.sampled_from("ABCD"))))
def test_aggregate_invariants(samples):
    metrics = aggregate_metrics(score_sample(c, g) for c, g in samples)
    json.dumps(metrics, allow_nan=False)
    assert metrics["correct_and_schema_valid"] <= min(metrics["correct"], metrics["schema_valid"])
    assert metrics["schema_valid"] <= metrics["json_valid"] <= metrics["n"]
    assert metrics["schema_valid"] <= metrics["lenient_schema_valid"]
    assert sum(metrics["failure_counts"].values()) == metrics["n"] - metrics["schema_valid"]


def test_a_five_option_task_scores_e_and_a_three_option_task_refuses_d():
    """The task's letters reach the gold check and both parsers (MedQA-5 has an E; PubMedQA stops at C)."""
    e_answer = json.dumps({"predicted_category": "E", "confidence": 0.7, "reason": "r"})
    five = score_sample("Answer: " + e_answer, "E", letters="ABCDE")
    assert (five.schema_valid, five.correct, five.lenient_schema_valid, five.lenient_correct) == (
        False,
        False,
        True,
        True,
    )
    strict_five = score_sample(e_answer, "E", letters="ABCDE")
    assert strict_five.schema_valid and strict_five.correct
    d_answer = e_answer.replace('"E"', '"D"')
    three = score_sample("Answer: " + d_answer, "C", letters="ABC")
    assert three.lenient_json_valid and not three.lenient_schema_valid
    assert score_sample(d_answer, "C", letters="ABC").failure == "bad_category"
    with pytest.raises(ValueError, match="gold letter"):
        score_sample(d_answer, "D", letters="ABC")
