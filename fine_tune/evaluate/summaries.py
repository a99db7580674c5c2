"""Statistics summaries of model runs: each model's rates with intervals, calibration, per-subject accuracy,
position bias, confusion matrix, per-letter F1 and the error taxonomy; paired comparisons of every two models;
identical-output checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

from fine_tune.evaluate.error_taxonomy import error_taxonomy
from fine_tune.evaluate.reason_metrics import reason_pairwise
from fine_tune.evaluate.runs import ModelRun
from fine_tune.evaluate.stats import (
    brier_score,
    confusion_matrix,
    expected_calibration_error,
    letter_distribution_test,
    mcnemar_exact,
    paired_bootstrap_diff,
    per_group_accuracy,
    per_letter_scores,
    reliability_bins,
    wilson_interval,
)
from fine_tune.task.prompts import LETTERS
from fine_tune.task.scoring import SampleScore, aggregate_metrics

CALIBRATION_BINS = 10

# metric -> (numerator, denominator) in aggregate_metrics' counts, for the Wilson intervals
METRIC_COUNTS: dict[str, tuple[str, str]] = {
    "accuracy": ("correct", "n"),
    "valid_json_rate": ("json_valid", "n"),
    "schema_pass_rate": ("schema_valid", "n"),
    "accuracy_on_schema": ("correct_and_schema_valid", "schema_valid"),
    "lenient_accuracy": ("lenient_correct", "n"),
    "lenient_schema_pass_rate": ("lenient_schema_valid", "n"),
}


def metric_intervals(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each rate with its count, total and 95% Wilson interval."""
    intervals = {}
    for name, (count_key, total_key) in METRIC_COUNTS.items():
        count, total = metrics[count_key], metrics[total_key]
        low, high = wilson_interval(count, total)
        intervals[name] = {"value": metrics[name], "count": count, "total": total, "ci_low": low, "ci_high": high}
    return intervals


def calibration(records: Sequence[Mapping[str, Any]], n_bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """ECE, Brier score and reliability bins of the stated confidence, over schema-valid answers."""
    valid = [r for r in records if r["schema_valid"]]
    confidences = [r["confidence"] for r in valid]
    correct = [r["correct"] for r in valid]
    return {
        "n": len(valid),
        "accuracy": sum(correct) / len(valid) if valid else None,
        "mean_confidence": sum(confidences) / len(valid) if valid else None,
        "ece": expected_calibration_error(confidences, correct, n_bins),
        "brier": brier_score(confidences, correct),
        "bins": reliability_bins(confidences, correct, n_bins),
    }


def model_summary(
    records: Sequence[Mapping[str, Any]], scores: Sequence[SampleScore], letters: Sequence[str] = LETTERS
) -> dict[str, Any]:
    """Everything reported per model, from its records and scores."""
    gold = [r["gold"] for r in records]
    predicted = [r["predicted"] for r in records]
    letter_scores = per_letter_scores(gold, predicted, letters)
    metrics = {**aggregate_metrics(scores), "macro_f1": letter_scores["macro_f1"]}
    return {
        "metrics": metrics,
        "intervals": metric_intervals(metrics),
        "calibration": calibration(records),
        "per_subject": per_group_accuracy([r["subject"] for r in records], [r["correct"] for r in records]),
        "letter_distribution": letter_distribution_test(predicted, gold, letters),
        "confusion_matrix": confusion_matrix(gold, predicted, letters),
        "per_letter": letter_scores["per_letter"],
        "error_taxonomy": error_taxonomy(records, letters),
    }


def compare(a: ModelRun, b: ModelRun, resamples: int, seed: int) -> dict[str, Any]:
    """Strict accuracy of a minus b on the same rows: paired bootstrap CI and exact McNemar test; `reason`: the
    reason-vs-explanation metrics' paired differences ({} when no row has an explanation)."""
    correct_a, correct_b = a.correct, b.correct
    boot = paired_bootstrap_diff(correct_a, correct_b, n_resamples=resamples, seed=seed)
    return {
        "a": a.label,
        "b": b.label,
        "n": len(correct_a),
        "accuracy_a": sum(correct_a) / len(correct_a),
        "accuracy_b": sum(correct_b) / len(correct_b),
        "diff": boot["diff"],
        "ci_low": boot["low"],
        "ci_high": boot["high"],
        **mcnemar_exact(correct_a, correct_b),
        "reason": reason_pairwise(a.records, b.records, resamples, seed),
    }


def pairwise_comparisons(runs: Sequence[ModelRun], resamples: int, seed: int) -> list[dict[str, Any]]:
    """`compare` for every pair of successful models, in the configured order."""
    return [compare(a, b, resamples, seed) for a, b in combinations([run for run in runs if run.ok], 2)]


def identical_output_warnings(runs: Sequence[ModelRun]) -> list[str]:
    """Two models with different weights but the same text on every question are probably the same weights.

    A merged model and its own adapter are the same weights (`ModelRun.identities`): they may agree."""
    ok = [run for run in runs if run.ok and run.records]
    warnings = []
    for a, b in combinations(ok, 2):
        if a.source == b.source or a.identities() & b.identities():
            continue
        if [r["raw_output"] for r in a.records] == [r["raw_output"] for r in b.records]:
            warnings.append(
                f"{a.label} and {b.label} gave identical outputs on all {len(a.records)} questions: check that they "
                "really are different models (upstream once evaluated the base model under the name 'grpo')"
            )
    return warnings
