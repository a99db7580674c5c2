"""After a curriculum round's eval: `training_recommendations.json`, which subjects to train on more next round.

Per subject, the handed-on model's score on its holdout rows (multiple-choice: strict accuracy; open: ROUGE-L F) with
a 95% bootstrap interval. The rule: a subject is **low-performing when its score is below the model's overall score
on all holdout rows** (point estimates; the interval is reported beside it, so a reader sees which gaps are within
noise). A low-performing subject's recommended share rises by `share_step` (at most 1), the others keep their share.
`change` compares with the previous round's file (`recommendations`): each subject's score then and now, and its
share then and now.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fine_tune.data.curriculum import NO_SUBJECT, RECOMMENDATIONS_FILE
from fine_tune.evaluate.text_metrics import metric_intervals
from fine_tune.io import atomic_write_json

RULE = "score below the model's overall score on all holdout rows (point estimates)"


def row_score(record: Mapping[str, Any]) -> float:
    """A row's score: strict correctness (multiple choice) or the answer's ROUGE-L F (open)."""
    return float(record["correct"]) if "correct" in record else float(record["rougeL"])


def subject_scores(records: Sequence[Mapping[str, Any]], resamples: int, seed: int) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[float]] = {}
    for record in records:
        groups.setdefault(record.get("subject") or NO_SUBJECT, []).append(row_score(record))
    scores = {}
    for subject, values in sorted(groups.items()):
        _, intervals = metric_intervals({"score": values}, None, resamples, seed)
        entry = intervals["score"]
        scores[subject] = {
            "n": entry["n"],
            "score": entry["value"],
            "ci_low": entry["ci_low"],
            "ci_high": entry["ci_high"],
        }
    return scores


def recommend(
    label: str,
    records: Sequence[Mapping[str, Any]],
    *,
    holdout_per_subject: int,
    start_share: float,
    share_step: float,
    previous: Mapping[str, Any] | None,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """The recommendations for the next round from one model's holdout records."""
    scores = subject_scores(records, resamples, seed)
    overall = sum(row_score(r) for r in records) / len(records)
    before = dict((previous or {}).get("recommended_shares") or {})
    shares_now = {subject: before.get(subject, start_share) for subject in scores}
    low = sorted((s for s, e in scores.items() if e["score"] < overall), key=lambda s: scores[s]["score"])
    recommended = {s: min(1.0, shares_now[s] + share_step) if s in low else shares_now[s] for s in scores}
    old_scores = (previous or {}).get("scores") or {}
    change = {
        subject: {
            "score_before": old_scores.get(subject, {}).get("score"),
            "score_now": entry["score"],
            "score_diff": entry["score"] - old_scores[subject]["score"] if subject in old_scores else None,
            "share_before": shares_now[subject],
            "share_next": recommended[subject],
        }
        for subject, entry in scores.items()
    }
    return {
        "model": label,
        "rule": RULE,
        "overall_score": overall,
        "holdout_per_subject": holdout_per_subject,
        "low_performing": low,
        "low_performing_scores": {s: scores[s] for s in low},
        "scores": scores,
        "recommended_shares": recommended,
        "share_step": share_step,
        "change": change,
        "previous": (previous or {}).get("path"),
    }


def write_recommendations(folder: Path, label: str, records: Sequence[Mapping[str, Any]], config: Any) -> Path:
    """training_recommendations.json in the eval folder, from `label`'s records (`config`: the EvalConfig)."""
    previous = None
    if config.recommendations:
        previous = {
            **json.loads(Path(config.recommendations).read_text(encoding="utf-8")),
            "path": config.recommendations,
        }
    recommendations = recommend(
        label,
        records,
        holdout_per_subject=config.holdout_per_subject,
        start_share=config.start_share,
        share_step=config.share_step,
        previous=previous,
        resamples=config.bootstrap_resamples,
        seed=config.seed,
    )
    return atomic_write_json(folder / RECOMMENDATIONS_FILE, recommendations)
