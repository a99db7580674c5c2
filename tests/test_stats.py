import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from fine_tune.evaluate.stats import (
    brier_score,
    confusion_matrix,
    expected_calibration_error,
    letter_distribution_test,
    mcnemar_exact,
    paired_bootstrap_diff,
    per_group_accuracy,
    reliability_bins,
    wilson_interval,
)

Z95 = 1.959963984540054


def test_wilson_known_value():
    # 55/200 = 27.5%: center (p + z^2/2n)/(1 + z^2/n) = 0.27924, half-width 0.06144.
    assert wilson_interval(55, 200) == pytest.approx((0.21780, 0.34068), abs=1e-5)


def test_wilson_edges():
    assert wilson_interval(0, 0) == (None, None)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(Z95**2 / (10 + Z95**2))
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(10 / (10 + Z95**2))
    assert wilson_interval(5, 10, confidence=0.99)[0] < wilson_interval(5, 10)[0]


@pytest.mark.parametrize(("successes", "n", "confidence"), [(-1, 10, 0.95), (11, 10, 0.95), (5, 10, 1.0), (5, 10, 0)])
def test_wilson_rejects_bad_input(successes, n, confidence):
    with pytest.raises(ValueError):
        wilson_interval(successes, n, confidence)


@given(st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_endpoints_solve_the_score_equation(case):
    successes, n = case
    p_hat = successes / n
    for bound in wilson_interval(successes, n):
        assert 0 <= bound <= 1
        if 0 < bound < 1:  # |p_hat - p| = z * sqrt(p (1 - p) / n) at each endpoint
            assert abs(p_hat - bound) == pytest.approx(Z95 * math.sqrt(bound * (1 - bound) / n), rel=1e-6, abs=1e-12)


def paired(b10, b01, both=0, neither=0):
    """Outcome vectors with b10 pairs only a got right, b01 pairs only b got right, and concordant pairs."""
    a = [1] * b10 + [0] * b01 + [1] * both + [0] * neither
    b = [0] * b10 + [1] * b01 + [1] * both + [0] * neither
    return a, b


def test_mcnemar_hand_computed():
    # 10 vs 2 discordant pairs: p = 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * 79 / 4096
    result = mcnemar_exact(*paired(b10=10, b01=2, both=30, neither=7))
    assert result["b01"] == 2 and result["b10"] == 10
    assert result["mcnemar_p"] == pytest.approx(158 / 4096) and round(result["mcnemar_p"], 4) == 0.0386


def test_mcnemar_without_discordant_pairs_or_balanced():
    assert mcnemar_exact(*paired(0, 0, both=5, neither=5)) == {"b01": 0, "b10": 0, "mcnemar_p": 1.0}
    assert mcnemar_exact(*paired(3, 3))["mcnemar_p"] == 1.0
    assert mcnemar_exact([], [])["mcnemar_p"] == 1.0


@given(st.integers(0, 60), st.integers(0, 60))
def test_mcnemar_is_the_two_sided_binomial_tail_and_symmetric(b10, b01):
    a, b = paired(b10, b01)
    p_value = mcnemar_exact(a, b)["mcnemar_p"]
    assert p_value == mcnemar_exact(b, a)["mcnemar_p"]
    n = b10 + b01
    tail = sum(math.comb(n, k) for k in range(min(b10, b01) + 1)) / 2**n
    assert p_value == pytest.approx(min(1.0, 2 * tail), rel=1e-9)


def test_paired_inputs_are_checked():
    with pytest.raises(ValueError, match="length"):
        mcnemar_exact([1, 0], [1])
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_exact([2], [1])
    with pytest.raises(ValueError):
        paired_bootstrap_diff([], [])


def test_bootstrap_is_deterministic_and_brackets_the_difference():
    a, b = paired(b10=30, b01=10, both=40, neither=20)
    result = paired_bootstrap_diff(a, b, seed=3)
    assert result == paired_bootstrap_diff(a, b, seed=3)
    assert result["diff"] == pytest.approx(0.2)
    assert result["low"] < 0.2 < result["high"]
    assert result["low"] > 0  # 30 vs 10 discordant out of 100 is clearly positive
    assert paired_bootstrap_diff(b, a, seed=3)["diff"] == pytest.approx(-0.2)


def test_bootstrap_matches_index_resampling():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 300)
    b = np.where(rng.random(300) < 0.3, 1 - a, a)
    indices = rng.integers(0, 300, (20_000, 300))
    naive = np.quantile(a[indices].mean(axis=1) - b[indices].mean(axis=1), [0.025, 0.975])
    result = paired_bootstrap_diff(a, b, n_resamples=20_000)
    assert (result["low"], result["high"]) == pytest.approx(tuple(naive), abs=0.006)


def test_bootstrap_matches_scipy_paired_bootstrap():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2, 400)
    b = np.where(rng.random(400) < 0.25, 1 - a, a)
    reference = sps.bootstrap(
        (a, b),
        lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis),
        paired=True,
        n_resamples=20_000,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    result = paired_bootstrap_diff(a, b, n_resamples=20_000)
    assert (result["low"], result["high"]) == pytest.approx((reference.low, reference.high), abs=0.006)


def test_bootstrap_of_identical_vectors_is_zero():
    assert paired_bootstrap_diff([1, 0, 1], [1, 0, 1]) == {"diff": 0.0, "low": 0.0, "high": 0.0}


def test_ece_hand_computed():
    # bin 0: conf .05, acc 0 -> gap .05; bin 1: conf .15, acc 1 -> gap .85; bin 9: conf (.95+.95+1)/3, acc 2/3 -> .3
    confidences = [0.05, 0.15, 0.95, 0.95, 1.0]
    correct = [0, 1, 1, 0, 1]
    assert expected_calibration_error(confidences, correct) == pytest.approx((0.05 + 0.85 + 3 * 0.3) / 5)


def test_ece_extremes():
    assert expected_calibration_error([1.0, 1.0, 0.0], [True, True, False]) == 0.0
    assert expected_calibration_error([1.0, 1.0], [0, 0]) == 1.0
    assert expected_calibration_error([0.2, 0.9], [1, 0], n_bins=1) == pytest.approx(abs(0.5 - 0.55))
    assert expected_calibration_error([], []) is None


def test_reliability_bins_edges():
    bins = reliability_bins([0.0, 0.1, 0.29, 0.3, 0.7, 1.0], [0, 1, 1, 0, 1, 1], n_bins=10)
    assert [b["count"] for b in bins] == [1, 1, 1, 1, 0, 0, 0, 1, 0, 1]
    assert (bins[0]["low"], bins[0]["high"], bins[9]["low"], bins[9]["high"]) == (0.0, 0.1, 0.9, 1.0)
    assert bins[4] == {"low": 0.4, "high": 0.5, "count": 0, "accuracy": None, "mean_confidence": None}
    assert bins[2] == {"low": 0.2, "high": 0.3, "count": 1, "accuracy": 1.0, "mean_confidence": 0.29}


@pytest.mark.parametrize("confidences", [[1.2], [-0.1], [float("nan")]])
def test_calibration_rejects_confidences_outside_the_unit_interval(confidences):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error(confidences, [1])


@given(
    st.lists(st.tuples(st.floats(0, 1), st.booleans()), max_size=50),
    st.integers(1, 20),
)
def test_calibration_invariants(samples, n_bins):
    confidences = [c for c, _ in samples]
    correct = [k for _, k in samples]
    bins = reliability_bins(confidences, correct, n_bins)
    assert len(bins) == n_bins and sum(b["count"] for b in bins) == len(samples)
    for b in bins:
        if b["count"]:
            assert b["low"] - 1e-12 <= b["mean_confidence"] <= b["high"] + 1e-12
    ece = expected_calibration_error(confidences, correct, n_bins)
    assert ece is None if not samples else 0 <= ece <= 1


def test_brier_hand_computed():
    assert brier_score([0.9, 0.2], [1, 0]) == pytest.approx((0.01 + 0.04) / 2)
    assert brier_score([], []) is None


def test_letter_distribution_hand_computed():
    gold = list("ABCD") * 25
    predicted = ["A"] * 40 + ["B"] * 20 + ["C"] * 20 + ["D"] * 20 + [None, "x"]
    result = letter_distribution_test(predicted, gold)
    assert result["predicted_counts"] == {"A": 40, "B": 20, "C": 20, "D": 20}
    assert result["gold_counts"] == {"A": 25, "B": 25, "C": 25, "D": 25}
    assert result["chi2"] == pytest.approx((15**2 + 3 * 5**2) / 25)  # = 12 on 3 degrees of freedom
    assert result["p_value"] == pytest.approx(0.007383, abs=1e-6)


def test_letter_distribution_uses_gold_proportions():
    gold = ["A"] * 50 + ["B"] * 30 + ["C"] * 20
    result = letter_distribution_test(["A"] * 5 + ["B"] * 3 + ["C"] * 2, gold)
    assert result["chi2"] == 0.0 and result["p_value"] == 1.0  # D never in gold nor predicted: left out


def test_letter_distribution_zero_expected_and_undefined_cases():
    assert letter_distribution_test(["D", "A"], ["A", "B"])["chi2"] == math.inf
    assert letter_distribution_test(["D", "A"], ["A", "B"])["p_value"] == 0.0
    for predicted, gold in [([None, "e"], ["A", "B"]), (["A"], ["A", "A"]), ([], [])]:
        result = letter_distribution_test(predicted, gold)
        assert result["chi2"] is None and result["p_value"] is None
    with pytest.raises(ValueError):
        letter_distribution_test(["A"], ["a"])


def test_confusion_matrix():
    matrix = confusion_matrix(["A", "A", "B", "D", "D"], ["A", "C", None, "D", "z"])
    assert matrix["A"] == {"A": 1, "B": 0, "C": 1, "D": 0, "invalid": 0}
    assert matrix["B"] == {"A": 0, "B": 0, "C": 0, "D": 0, "invalid": 1}
    assert matrix["C"] == dict.fromkeys(["A", "B", "C", "D", "invalid"], 0)
    assert matrix["D"] == {"A": 0, "B": 0, "C": 0, "D": 1, "invalid": 1}
    with pytest.raises(ValueError):
        confusion_matrix(["A"], ["A", "B"])


def test_per_group_accuracy():
    groups = ["Surgery", None, "Anatomy", "Surgery", "Anatomy", "Surgery"]
    correct = [1, 0, 1, 1, 0, 0]
    result = per_group_accuracy(groups, correct)
    assert list(result) == ["Anatomy", "Surgery", "unknown"]
    assert result["Surgery"] == {
        "n": 3,
        "correct": 2,
        "accuracy": 2 / 3,
        "ci_low": wilson_interval(2, 3)[0],
        "ci_high": wilson_interval(2, 3)[1],
    }
    assert (result["unknown"]["n"], result["unknown"]["accuracy"]) == (1, 0.0)
    with pytest.raises(ValueError):
        per_group_accuracy(["x"], [1, 0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: brier_score([0.5, 0.5], [1]), "length mismatch: 2 confidences vs 1 outcomes"),
        (lambda: brier_score([1.5], [1]), r"confidences must lie in \[0, 1\]"),
        (lambda: brier_score([0.5], [2]), "outcomes must be 0/1 or booleans"),
        (lambda: wilson_interval(1, 2, confidence=1.0), r"confidence level must be in \(0, 1\), got 1.0"),
        (
            lambda: confusion_matrix(["A", "Z"], ["A", "A"]),
            r"gold letters must be in \('A', 'B', 'C', 'D'\); got e.g. 'Z'",
        ),
        (lambda: confusion_matrix(["A"], ["A", "B"]), "length mismatch: 1 gold vs 2 predicted"),
        (lambda: paired_bootstrap_diff([], []), "need at least one paired sample"),
        (lambda: reliability_bins([0.5], [1], n_bins=0), "n_bins must be >= 1, got 0"),
        (lambda: wilson_interval(3, 2), "need 0 <= successes <= n, got successes=3, n=2"),
        (lambda: per_group_accuracy(["a"], [1, 0]), "length mismatch: 1 groups vs 2 outcomes"),
    ],
)
def test_bad_inputs_are_named(call, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        call()


def test_a_five_letter_task_counts_its_e():
    matrix = confusion_matrix(["E", "E", "A"], ["E", "E", "F"], letters="ABCDE")
    assert matrix["E"]["E"] == 2 and matrix["A"]["invalid"] == 1
    result = letter_distribution_test(["E", "E", "A", "B"], ["E", "A", "B", "C"], letters="ABCDE")
    assert result["predicted_counts"]["E"] == 2


def test_one_paired_sample_is_enough_and_the_defaults_are_fixed():
    assert paired_bootstrap_diff([1], [0])["diff"] == 1.0
    rng = np.random.default_rng(5)
    a, b = rng.integers(0, 2, 100_000), rng.integers(0, 2, 100_000)  # a fine grid of differences: no ties
    default = paired_bootstrap_diff(a, b)
    assert default == paired_bootstrap_diff(a, b, n_resamples=10000, seed=0) == paired_bootstrap_diff(a, b)
    assert default != paired_bootstrap_diff(a, b, seed=1), "the default seed is 0, not merely some seed"
    confidences, correct = rng.random(200), rng.random(200) < 0.6
    ece = expected_calibration_error(confidences, correct)
    assert (
        ece
        == expected_calibration_error(confidences, correct, 10)
        != expected_calibration_error(confidences, correct, 11)
    )
    assert len(reliability_bins(confidences, correct)) == 10


def test_per_letter_scores_agree_with_a_hand_count_and_count_invalid_as_a_miss():
    from fine_tune.evaluate.stats import per_letter_scores

    gold = ["A", "A", "B", "B", "C", "C"]
    predicted = ["A", "B", "B", None, "C", "C"]
    scores = per_letter_scores(gold, predicted, ("A", "B", "C"))
    a, b, c = (scores["per_letter"][letter] for letter in "ABC")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, 0.5, 2)
    assert (b["precision"], b["recall"]) == (0.5, 0.5)  # the invalid answer to a B question is a miss, not a B
    assert (c["precision"], c["recall"], c["f1"]) == (1.0, 1.0, 1.0)
    assert a["f1"] == pytest.approx(2 / 3)
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)


def test_per_letter_scores_of_a_letter_never_predicted_are_zero_not_nan():
    from fine_tune.evaluate.stats import per_letter_scores

    scores = per_letter_scores(["A", "B"], ["A", "A"], ("A", "B"))
    assert scores["per_letter"]["B"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_the_bootstrap_interval_is_central_and_matches_the_normal_approximation():
    # 400 pairs, 120 only-a and 80 only-b right: diff 0.1, per-pair variance 0.5 - 0.1**2, so sd 0.035
    a, b = paired(b10=120, b01=80, both=100, neither=100)
    result = paired_bootstrap_diff(a, b, n_resamples=100_000)
    half_width = Z95 * math.sqrt((0.5 - 0.1**2) / 400)
    assert result["high"] - result["diff"] == pytest.approx(half_width, abs=0.002)
    assert result["diff"] - result["low"] == pytest.approx(half_width, abs=0.002)


def test_groups_of_mixed_types_are_ordered_by_their_text():
    result = per_group_accuracy([10, "b", None, 9, 10], [1, 0, 1, 1, 0])
    assert list(result) == [10, 9, "b", "unknown"]
    assert (result[10]["n"], result[10]["correct"]) == (2, 1)


def test_per_letter_scores_of_a_five_letter_task_count_its_e_silently():
    import warnings

    from fine_tune.evaluate.stats import per_letter_scores

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a letter never predicted scores 0 without a warning in the eval's log
        scores = per_letter_scores(["E", "E", "A"], ["E", "B", "A"], "ABCDE")
    assert scores["per_letter"]["E"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert scores["per_letter"]["C"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_per_letter_scores_of_no_rows_have_no_macro_f1_and_a_mismatch_is_named():
    from fine_tune.evaluate.stats import per_letter_scores

    empty = per_letter_scores([], [])
    assert empty["macro_f1"] is None
    zeros = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert empty["per_letter"] == {letter: zeros for letter in "ABCD"}
    with pytest.raises(ValueError, match="^length mismatch: 2 gold vs 1 predicted$"):
        per_letter_scores(["A", "B"], ["A"])
