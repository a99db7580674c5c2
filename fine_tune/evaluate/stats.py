"""Statistics for comparing eval runs: intervals, paired tests, calibration, position bias, per-group accuracy.

Conventions: per-sample outcomes are 0/1 (or bool) vectors; paired inputs must have equal lengths (else ValueError);
a statistic that is undefined on empty input is None, never NaN, so results stay valid JSON. The Wilson interval,
McNemar's test and the chi-square test are scipy's; the paired bootstrap resamples exactly as scipy's would, faster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from fine_tune.task.parsing import is_letter
from fine_tune.task.prompts import LETTERS

INVALID = "invalid"
UNKNOWN_GROUP = "unknown"


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | tuple[None, None]:
    """Wilson score interval for a binomial proportion (scipy's); (None, None) when n == 0."""
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    _check_confidence(confidence)
    if n == 0:
        return None, None
    interval = sps.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def paired_bootstrap_diff(
    correct_a: Sequence[Any],
    correct_b: Sequence[Any],
    n_resamples: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Accuracy of a minus accuracy of b, with a percentile interval from resampling the paired samples.

    Resampling n pairs with replacement only changes how many pairs have a - b = +1 / -1 / 0, so each resample draws
    those three counts from a multinomial: the same distribution as resampling indices (what
    `scipy.stats.bootstrap(paired=True, method="percentile")` does), in O(n_resamples) time and memory. On the 4,183
    validation rows with 10,000 resamples scipy took 3.7 s per pair here and this 2 ms, with intervals equal within
    Monte Carlo noise (tests/test_stats.py compares both with index resampling).
    """
    _check_confidence(confidence)
    a, b = _paired_outcomes(correct_a, correct_b)
    if len(a) == 0:
        raise ValueError("need at least one paired sample")
    diff = a - b
    n = len(diff)
    proportions = [np.mean(diff == 1), np.mean(diff == -1), np.mean(diff == 0)]
    counts = np.random.default_rng(seed).multinomial(n, proportions, size=n_resamples)
    resampled = (counts[:, 0] - counts[:, 1]) / n
    alpha = 1 - confidence
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return {"diff": float(diff.mean()), "low": float(low), "high": float(high)}


def mcnemar_exact(correct_a: Sequence[Any], correct_b: Sequence[Any]) -> dict[str, Any]:
    """Exact two-sided McNemar test: b01 = pairs only b got right, b10 = pairs only a got right.

    Under the null each discordant pair is a fair coin, so the test is a two-sided binomial test of b10 successes
    in b01 + b10 trials at p = 1/2; `mcnemar_p` is 1.0 without discordant pairs.
    """
    a, b = _paired_outcomes(correct_a, correct_b)
    b01 = int(np.sum((a == 0) & (b == 1)))
    b10 = int(np.sum((a == 1) & (b == 0)))
    p_value = float(sps.binomtest(b10, b01 + b10, 0.5).pvalue) if b01 + b10 else 1.0
    return {"b01": b01, "b10": b10, "mcnemar_p": p_value}


def reliability_bins(confidences: Sequence[float], correct: Sequence[Any], n_bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width bins on [0, 1], each [low, high) except the last, which includes 1.0; empty bins have None stats."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf, outcome = _calibration_inputs(confidences, correct)
    bin_index = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    bins = []
    for k in range(n_bins):
        in_bin = bin_index == k
        count = int(in_bin.sum())
        bins.append(
            {
                "low": k / n_bins,
                "high": (k + 1) / n_bins,
                "count": count,
                "accuracy": float(outcome[in_bin].mean()) if count else None,
                "mean_confidence": float(conf[in_bin].mean()) if count else None,
            }
        )
    return bins


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[Any], n_bins: int = 10) -> float | None:
    """Count-weighted mean |accuracy - mean confidence| over the reliability bins; None when there are no samples."""
    bins = reliability_bins(confidences, correct, n_bins)
    n = sum(b["count"] for b in bins)
    if n == 0:
        return None
    return sum(b["count"] * abs(b["accuracy"] - b["mean_confidence"]) for b in bins if b["count"]) / n


def brier_score(confidences: Sequence[float], correct: Sequence[Any]) -> float | None:
    """Mean squared gap between confidence and the 0/1 outcome; None when there are no samples."""
    conf, outcome = _calibration_inputs(confidences, correct)
    return float(np.mean((conf - outcome) ** 2)) if len(conf) else None


def letter_distribution_test(
    predicted_letters: Sequence[Any], gold_letters: Sequence[str], letters: Sequence[str] = LETTERS
) -> dict[str, Any]:
    """Chi-square goodness of fit of the valid predicted letters against the gold letters' proportions.

    A small p-value means the model favours some positions beyond what the gold distribution explains. Letters that
    never occur in gold are left out of the test when never predicted either; if one of them is predicted, that
    cannot happen under the null, so chi2 = inf and p = 0.0. chi2 and p are None when the test is undefined (no valid
    prediction, or fewer than two letters with a non-zero expected count).
    """
    gold_counter = Counter(_check_letters(gold_letters, letters))
    predicted_counter = Counter(p for p in predicted_letters if is_letter(p, letters))
    gold_counts = {letter: gold_counter[letter] for letter in letters}
    predicted_counts = {letter: predicted_counter[letter] for letter in letters}
    n_predicted = sum(predicted_counts.values())
    n_gold = sum(gold_counts.values())
    tested = [letter for letter in letters if gold_counts[letter]]
    result = {"predicted_counts": predicted_counts, "gold_counts": gold_counts, "chi2": None, "p_value": None}
    if n_predicted == 0 or len(tested) < 2:
        return result
    if any(predicted_counts[letter] for letter in letters if letter not in tested):
        return {**result, "chi2": float("inf"), "p_value": 0.0}
    observed = np.array([predicted_counts[letter] for letter in tested], dtype=float)
    expected = np.array([gold_counts[letter] for letter in tested], dtype=float) * n_predicted / n_gold
    test = sps.chisquare(observed, f_exp=expected)
    return {**result, "chi2": float(test.statistic), "p_value": float(test.pvalue)}


def confusion_matrix(
    gold_letters: Sequence[str], predicted_letters: Sequence[Any], letters: Sequence[str] = LETTERS
) -> dict[str, dict[str, int]]:
    """Rows: the task's gold letters; columns: predicted letters plus INVALID for a missing or non-letter one."""
    gold = _check_letters(gold_letters, letters)
    if len(gold) != len(predicted_letters):
        raise ValueError(f"length mismatch: {len(gold)} gold vs {len(predicted_letters)} predicted")
    matrix = {g: dict.fromkeys((*letters, INVALID), 0) for g in letters}
    for g, p in zip(gold, predicted_letters, strict=True):
        matrix[g][p if is_letter(p, letters) else INVALID] += 1
    return matrix


def per_letter_scores(
    gold_letters: Sequence[str], predicted_letters: Sequence[Any], letters: Sequence[str] = LETTERS
) -> dict[str, Any]:
    """Precision, recall, F1 and support of each of the task's letters, and their unweighted mean F1 (macro-F1), by
    scikit-learn. A missing or non-letter prediction is INVALID: never a letter, so it is a miss of its gold letter."""
    from sklearn.metrics import precision_recall_fscore_support

    gold = _check_letters(gold_letters, letters)
    if len(gold) != len(predicted_letters):
        raise ValueError(f"length mismatch: {len(gold)} gold vs {len(predicted_letters)} predicted")
    if not gold:
        empty = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        return {"per_letter": {letter: dict(empty) for letter in letters}, "macro_f1": None}
    predicted = [p if is_letter(p, letters) else INVALID for p in predicted_letters]
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=list(letters), average=None, zero_division=0.0
    )
    per_letter = {
        letter: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for letter, p, r, f, s in zip(letters, precision, recall, f1, support, strict=True)
    }
    return {"per_letter": per_letter, "macro_f1": float(np.mean(f1))}


def per_group_accuracy(groups: Sequence[Hashable | None], correct: Sequence[Any]) -> dict[Hashable, dict[str, Any]]:
    """Accuracy and its Wilson interval per group (a None group is UNKNOWN_GROUP), groups in sorted order."""
    outcome = _outcomes(correct)
    if len(groups) != len(outcome):
        raise ValueError(f"length mismatch: {len(groups)} groups vs {len(outcome)} outcomes")
    totals: Counter[Hashable] = Counter()
    hits: Counter[Hashable] = Counter()
    for group, hit in zip(groups, outcome, strict=True):
        key = UNKNOWN_GROUP if group is None else group
        totals[key] += 1
        hits[key] += int(hit)
    result = {}
    for key in sorted(totals, key=str):
        low, high = wilson_interval(hits[key], totals[key])
        result[key] = {
            "n": totals[key],
            "correct": hits[key],
            "accuracy": hits[key] / totals[key],
            "ci_low": low,
            "ci_high": high,
        }
    return result


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {confidence}")


def _outcomes(correct: Sequence[Any]) -> np.ndarray:
    """A 0/1 int vector; anything other than 0/1/False/True raises ValueError."""
    values = np.asarray(correct, dtype=float).reshape(-1)
    if not np.isin(values, (0.0, 1.0)).all():
        raise ValueError("outcomes must be 0/1 or booleans")
    return values.astype(int)


def _paired_outcomes(correct_a: Sequence[Any], correct_b: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    a, b = _outcomes(correct_a), _outcomes(correct_b)
    if len(a) != len(b):
        raise ValueError(f"paired vectors differ in length: {len(a)} vs {len(b)}")
    return a, b


def _calibration_inputs(confidences: Sequence[float], correct: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidences, dtype=float).reshape(-1)
    outcome = _outcomes(correct)
    if len(conf) != len(outcome):
        raise ValueError(f"length mismatch: {len(conf)} confidences vs {len(outcome)} outcomes")
    if not ((conf >= 0) & (conf <= 1)).all():
        raise ValueError("confidences must lie in [0, 1]")
    return conf, outcome


def _check_letters(values: Sequence[Any], letters: Sequence[str]) -> list[str]:
    bad = [x for x in values if not is_letter(x, letters)]
    if bad:
        raise ValueError(f"gold letters must be in {tuple(letters)}; got e.g. {bad[0]!r}")
    return list(values)
