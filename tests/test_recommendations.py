"""training_recommendations.json (`fine_tune.evaluate.recommendations`): the stated rules, the shares and the change
since the previous round."""

import pytest

from fine_tune.data.curriculum import Curriculum
from fine_tune.errors import RecipeError
from fine_tune.evaluate.recommendations import RecommendationRule, recommendations
from fine_tune.evaluate.stats import per_group_accuracy

# overall 30/60 = 0.5; anatomy 1/20 (Wilson upper 0.24 < 0.5) is low; surgery 9/20 and ent 20/20 are not
GROUPS = ["anatomy"] * 20 + ["surgery"] * 20 + ["ent"] * 20
CORRECT = [True] * 1 + [False] * 19 + [True] * 9 + [False] * 11 + [True] * 20
MODEL = {"metrics": {"accuracy": 0.5}, "per_subject": per_group_accuracy(GROUPS, CORRECT)}


def test_the_wilson_rule_names_subjects_whose_upper_bound_is_below_the_overall_accuracy():
    current = Curriculum(holdout_per_subject=20, start_share=0.5, recommended_shares={"ent": 0.75})
    advice = recommendations(MODEL, current, RecommendationRule(step=0.25), previous_low=["ent"], round_number=2)
    assert advice["low_performing"] == ["anatomy"]
    assert advice["intervals"]["anatomy"]["ci_high"] < 0.5 <= advice["intervals"]["surgery"]["ci_high"]
    assert advice["recommended_shares"] == {"anatomy": 0.75, "ent": 0.75, "surgery": 0.5}
    assert advice["change"] == {
        "shares": {"anatomy": {"before": 0.5, "after": 0.75}},
        "newly_low": ["anatomy"],
        "no_longer_low": ["ent"],
    }
    assert advice["reasons"]["anatomy"].startswith("round 2: accuracy 0.050") and advice["holdout_per_subject"] == 20


def test_the_lowest_rule_names_k_subjects_and_shares_stop_at_one():
    current = Curriculum(holdout_per_subject=20, start_share=0.9)
    advice = recommendations(MODEL, current, RecommendationRule(rule="lowest", k=2, step=0.5), round_number=1)
    assert advice["low_performing"] == ["anatomy", "surgery"]
    assert advice["recommended_shares"] == {"anatomy": 1.0, "ent": 0.9, "surgery": 1.0}
    with pytest.raises(RecipeError, match="curriculum rule must be one of wilson, lowest"):
        RecommendationRule(rule="worst")
