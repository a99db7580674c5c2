"""How a multiple-choice answer's `reason` relates to the row's explanation (MedMCQA's `exp`): ROUGE-L F and token
F1 of the reason against the explanation, over the eval rows that have one, with bootstrap intervals and paired
differences between models (`fine_tune.evaluate.text_metrics`).

A reason counts only when the answer passes the strict schema; any other answer's reason is the empty text (0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fine_tune.evaluate.text_metrics import metric_intervals, paired_differences, rouge, token_f1

REASON_METRICS: tuple[str, ...] = ("reason_rougeL", "reason_token_f1")


def reason_rows(records: Sequence[Mapping[str, Any]]) -> dict[str, list[float]] | None:
    """Per-row reason scores over the rows with an explanation; None when no row has one."""
    pairs = [
        (record["reason"] if record["schema_valid"] and record.get("reason") else "", record["explanation"])
        for record in records
        if (record.get("explanation") or "").strip()
    ]
    if not pairs:
        return None
    return {
        "reason_rougeL": [rouge(reason, explanation)["rougeL"] for reason, explanation in pairs],
        "reason_token_f1": [token_f1(reason, explanation) for reason, explanation in pairs],
    }


def reason_summary(
    records: Sequence[Mapping[str, Any]], resamples: int, seed: int
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """(metrics, intervals) of the reason scores, both empty when no eval row has an explanation."""
    rows = reason_rows(records)
    if rows is None:
        return {}, {}
    return metric_intervals(rows, None, resamples, seed)


def reason_pairwise(
    a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], resamples: int, seed: int
) -> dict[str, dict[str, float]]:
    """Each reason metric of model a minus model b on the same rows, paired bootstrap interval ({} without rows)."""
    rows_a, rows_b = reason_rows(a), reason_rows(b)
    if rows_a is None or rows_b is None:
        return {}
    return paired_differences((rows_a, None), (rows_b, None), resamples, seed)
