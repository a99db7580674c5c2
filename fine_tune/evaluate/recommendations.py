"""training_recommendations.json: after a round's eval, the low-performing subjects and each subject's share of its
training rows for the next round (a curriculum file the next SFT reads, `fine_tune.data.curriculum`).

Rules (stated in the file):
- `wilson` (default): a subject is low-performing when the upper bound of its strict accuracy's 95% Wilson interval
  is below the overall strict accuracy (it is worse than the whole with 95% confidence, one-sided 97.5%).
- `lowest`: the k subjects of lowest strict accuracy (ties: fewer rows scored first, then by name).
A low-performing subject's share rises by `step` (at most 1); the others keep theirs. `change` says which shares
moved and which subjects became, or stopped being, low-performing since the previous round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fine_tune.data.curriculum import Curriculum
from fine_tune.errors import RecipeError

RULES = {
    "wilson": "upper bound of the subject's strict-accuracy 95% Wilson interval below the overall strict accuracy",
    "lowest": "the {k} subjects of lowest strict accuracy (ties: fewer rows, then name)",
}
DEFAULT_STEP = 0.25


@dataclass(frozen=True)
class RecommendationRule:
    rule: str = "wilson"
    k: int = 1
    step: float = DEFAULT_STEP

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise RecipeError(f"curriculum rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise RecipeError(f"curriculum k must be a whole number >= 1, got {self.k!r}")
        if isinstance(self.step, bool) or not isinstance(self.step, (int, float)) or not 0 < self.step <= 1:
            raise RecipeError(f"curriculum step must be a share in (0, 1], got {self.step!r}")

    @property
    def statement(self) -> str:
        return RULES[self.rule].format(k=self.k)


def low_performing(per_subject: Mapping[str, Mapping[str, Any]], overall: float, rule: RecommendationRule) -> list:
    """The subjects the rule names, sorted."""
    if rule.rule == "wilson":
        return sorted(
            s for s, entry in per_subject.items() if entry["ci_high"] is not None and entry["ci_high"] < overall
        )
    ranked = sorted(per_subject, key=lambda s: (per_subject[s]["accuracy"], per_subject[s]["n"], str(s)))
    return sorted(ranked[: rule.k])


def recommendations(
    model: Mapping[str, Any],
    current: Curriculum,
    rule: RecommendationRule,
    previous_low: list[str] | None = None,
    round_number: int | None = None,
) -> dict[str, Any]:
    """The training_recommendations.json of one eval (`model`: eval_results.json's models.<label> section), given
    the curriculum the round trained under and the previous round's low-performing subjects."""
    per_subject = {str(s): entry for s, entry in model["per_subject"].items()}
    overall = model["metrics"]["accuracy"]
    low = low_performing(per_subject, overall, rule)
    subjects = sorted(set(per_subject) | set(current.recommended_shares))
    shares = {s: current.share(s) for s in subjects}
    recommended = {s: round(min(1.0, shares[s] + rule.step), 6) if s in low else shares[s] for s in subjects}
    reasons = dict(current.reasons)
    for s in low:
        entry = per_subject[s]
        reasons[s] = (
            f"round {round_number}: accuracy {entry['accuracy']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}] "
            f"(n={entry['n']}) vs overall {overall:.3f}; {rule.statement}"
        )
    previous_low = previous_low or []
    return {
        "round": round_number,
        "rule": rule.rule,
        "rule_statement": rule.statement,
        "step": rule.step,
        "overall_accuracy": overall,
        "low_performing": low,
        "intervals": {s: dict(per_subject[s]) for s in sorted(per_subject)},
        "recommended_shares": recommended,
        "start_share": current.start_share,
        "holdout_per_subject": current.holdout_per_subject,
        "reasons": {s: reasons[s] for s in sorted(reasons) if recommended.get(s, 0) > current.start_share},
        "change": {
            "shares": {
                s: {"before": shares[s], "after": recommended[s]} for s in subjects if recommended[s] != shares[s]
            },
            "newly_low": sorted(set(low) - set(previous_low)),
            "no_longer_low": sorted(set(previous_low) - set(low)),
        },
    }
