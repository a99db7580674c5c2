"""A specialty curriculum's splits: a constant holdout of N rows per subject, a share of the rest to train on, the
remainder kept as a pool that later rounds draw from.

Each subject's valid, distinct rows are walked in one seeded order (the same in every round): its first
`holdout_per_subject` rows are the EVAL split (scored every round, never trained on), the next `share x rest` rows
(rounded up) the SFT split, the others the pool. A subject's share is `start_share`, or the `recommended_shares` of
a `training_recommendations.json` (`recommendations`): a larger share draws the next rows of that subject's pool, so
earlier rounds' rows stay in. The manifest records the shares, each subject's holdout/train/pool counts, the rows
drawn from the pool beyond the starting share, and the pool's row ids.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from fine_tune.data.normalise import NormalisedRows, content_hash
from fine_tune.data.rows import DUPLICATE_CONTENT, first_reasons
from fine_tune.data.splits import SplitResult, check_disjoint, shuffle_order
from fine_tune.errors import DatasetError

RECOMMENDATIONS_FILE = "training_recommendations.json"
NO_SUBJECT = "unknown"


def read_shares(path: str | Path) -> dict[str, float]:
    """`recommended_shares` of a training_recommendations.json; DatasetError naming the file when it is unusable."""
    try:
        shares = json.loads(Path(path).read_text(encoding="utf-8"))["recommended_shares"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{path}: not a training_recommendations.json with recommended_shares ({error})") from None
    bad = {k: v for k, v in shares.items() if not isinstance(v, int | float) or not 0 <= v <= 1}
    if bad:
        raise DatasetError(f"{path}: recommended_shares must be numbers in [0, 1], got {bad}")
    return {str(k): float(v) for k, v in shares.items()}


def subject_orders(normalised: NormalisedRows, seed: int) -> tuple[dict[str, list[int]], Counter]:
    """Each subject's canonical row positions in the seeded walk (repeated content skipped), and the skip counts."""
    position_of = {index: position for position, index in enumerate(normalised.source_indices)}
    reasons = first_reasons(normalised.report)
    orders: dict[str, list[int]] = {}
    seen: set[str] = set()
    skipped: Counter[str] = Counter()
    for index in shuffle_order(normalised.report.total, seed):
        if index not in position_of:
            skipped[reasons.get(index, "invalid")] += 1
            continue
        row = normalised.dataset[position_of[index]]
        digest = content_hash(row)
        if digest in seen:
            skipped[DUPLICATE_CONTENT] += 1
            continue
        seen.add(digest)
        orders.setdefault(row["subject"] or NO_SUBJECT, []).append(position_of[index])
    return dict(sorted(orders.items())), skipped


def curriculum_splits(
    normalised: NormalisedRows,
    *,
    seed: int,
    holdout_per_subject: int,
    start_share: float,
    recommendations: str | None = None,
    source: str | None = None,
    task: str | None = None,
    letters: tuple[str, ...] = (),
) -> SplitResult:
    """The sft (train), grpo (empty) and eval (holdout) splits of a curriculum round, with its manifest."""
    if holdout_per_subject < 1 or not 0 < start_share <= 1:
        raise DatasetError(f"curriculum: holdout_per_subject >= 1 and 0 < start_share <= 1 needed, got "
                           f"{holdout_per_subject} and {start_share}")  # fmt: skip
    shares = read_shares(recommendations) if recommendations else {}
    orders, skipped = subject_orders(normalised, seed)
    short = {s: len(order) for s, order in orders.items() if len(order) <= holdout_per_subject}
    if short:
        raise DatasetError(
            f"{task or 'curriculum'}: subject(s) with no rows beyond the holdout of {holdout_per_subject}: {short}"
        )
    picks: dict[str, list[int]] = {"sft": [], "grpo": [], "eval": []}
    pool: list[int] = []
    subjects: dict[str, dict[str, Any]] = {}
    for subject, order in orders.items():
        rest = order[holdout_per_subject:]
        share = shares.get(subject, start_share)
        train = math.ceil(share * len(rest))
        picks["eval"] += order[:holdout_per_subject]
        picks["sft"] += rest[:train]
        pool += rest[train:]
        subjects[subject] = {
            "share": share,
            "holdout": holdout_per_subject,
            "train": train,
            "pool": len(rest) - train,
            "drawn_from_pool": max(0, train - math.ceil(start_share * len(rest))),
        }
    rows = normalised.dataset
    splits = {name: rows.select(positions) for name, positions in picks.items()}
    manifest = {
        "seed": seed,
        "sizes": {name: len(positions) for name, positions in picks.items()},
        "source": source,
        "dataset_fingerprint": normalised.fingerprint,
        "splits": {name: _split_record(normalised, positions) for name, positions in picks.items()},
        "skipped": dict(skipped),
        "curriculum": {
            "holdout_per_subject": holdout_per_subject,
            "start_share": start_share,
            "recommendations": str(recommendations) if recommendations else None,
            "subjects": subjects,
            "pool": _split_record(normalised, pool),
        },
    }
    if task:
        manifest["task"] = {"name": task, "letters": list(letters)}
    check_disjoint(manifest)
    return SplitResult(splits=splits, manifest=manifest, skipped=dict(skipped))


def _split_record(normalised: NormalisedRows, positions: list[int]) -> dict[str, Any]:
    rows = normalised.dataset
    source = np.asarray(normalised.source_indices)
    return {
        "size": len(positions),
        "source_indices": [int(source[p]) for p in positions],
        "row_ids": [rows[p]["id"] or f"row {int(source[p])}" for p in positions],
        "content_hashes": [content_hash(rows[p]) for p in positions],
    }
