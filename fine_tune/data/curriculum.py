"""A specialty curriculum's split: a constant holdout per subject, a share of the rest trained, the remainder a pool.

A curriculum file (the recipe key `curriculum`; JSON or YAML) holds `holdout_per_subject` (N), `start_share` and
`recommended_shares` (subject -> share; a subject not named trains `start_share`), and optionally `reasons`
(subject -> why its share was raised). `training_recommendations.json`, written after each round's eval, has these
keys, so one round's recommendations are the next round's curriculum.

The candidates are every valid distinct row in the split's shuffled order (as for `stratify_by`). Per subject (the
canonical `subject` column: given, from the Hub config, or tagged): the first N rows are the holdout (the EVAL split;
the same in every round, since it depends on N and the seed only); of the rest, the first round(share x rest) rows
train (the SFT split), the remainder is the pool. The rows past round(start_share x rest) are the ones drawn from
the pool, recorded in the manifest with the reason. The GRPO split is empty. Each split is interleaved by subject as
a stratified one is (`fine_tune.data.stratify.interleave`), so a dev slice of its first rows spans the subjects.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fine_tune.data.stratify import interleave, stratum_label
from fine_tune.errors import RecipeError
from fine_tune.io import read_yaml

CURRICULUM_KEYS = ("holdout_per_subject", "start_share", "recommended_shares", "reasons")


@dataclass(frozen=True)
class Curriculum:
    holdout_per_subject: int
    start_share: float
    recommended_shares: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    path: str | None = None

    def share(self, subject: str) -> float:
        return self.recommended_shares.get(subject, self.start_share)


def _share(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise RecipeError(f"{where}: expected a share between 0 and 1, got {value!r}")
    return float(value)


def parse_curriculum(values: Mapping[str, Any], where: str) -> Curriculum:
    """A curriculum from a mapping (extra keys, such as a recommendations file's, are ignored)."""
    holdout = values.get("holdout_per_subject")
    if isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < 0:
        raise RecipeError(f"{where}: holdout_per_subject must be a whole number >= 0, got {holdout!r}")
    shares = values.get("recommended_shares") or {}
    reasons = values.get("reasons") or {}
    if not isinstance(shares, Mapping) or not isinstance(reasons, Mapping):
        raise RecipeError(f"{where}: recommended_shares and reasons must map a subject to a value")
    return Curriculum(
        holdout_per_subject=holdout,
        start_share=_share(values.get("start_share"), f"{where}: start_share"),
        recommended_shares={str(s): _share(v, f"{where}: recommended_shares.{s}") for s, v in shares.items()},
        reasons={str(s): str(v) for s, v in reasons.items()},
        path=where,
    )


def load_curriculum(path: str | Path) -> Curriculum:
    """A curriculum or training_recommendations.json file (JSON is YAML); RecipeError naming the file and key."""
    return parse_curriculum(read_yaml(path), str(path))


def share_count(share: float, available: int) -> int:
    """Rows a share of `available` trains: rounded half up."""
    return min(available, math.floor(share * available + 0.5))


def curriculum_assignment(
    labels: Sequence[Hashable | None], curriculum: Curriculum
) -> tuple[dict[str, list[int]], dict[str, dict[str, Any]]]:
    """Positions into `labels` (the candidates, in shuffled order) per split, and per subject what it got:
    holdout, share, sft, pool, and the positions drawn from the pool (past its start share)."""
    by_subject: dict[str, list[int]] = {}
    for position, label in enumerate(labels):
        by_subject.setdefault(stratum_label(label), []).append(position)
    holdout, sft, plan = {}, {}, {}
    for subject in sorted(by_subject):
        positions = by_subject[subject]
        held, rest = positions[: curriculum.holdout_per_subject], positions[curriculum.holdout_per_subject :]
        share = curriculum.share(subject)
        trained, start = share_count(share, len(rest)), share_count(curriculum.start_share, len(rest))
        holdout[subject], sft[subject] = held, rest[:trained]
        plan[subject] = {
            "holdout": len(held),
            "share": share,
            "sft": trained,
            "pool": len(rest) - trained,
            "drawn_from_pool": rest[start:trained],
        }
    return {"sft": interleave(sft), "grpo": [], "eval": interleave(holdout)}, plan
