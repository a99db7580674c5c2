"""Stratified splits (`--stratify_by subject`): every split, and every prefix of it, keeps each stratum's share.

Given the candidate rows in shuffled order and their stratum labels, each split of size m gets from stratum s the
quota m * n_s / N rounded by largest remainder (Hamilton's method; ties broken by stratum name), never more rows of
a stratum than are left; the rows of a stratum go to the splits in candidate order (sft first, then grpo, eval).
Inside a split the strata are interleaved by the position (k + 1/2) / q_s of a stratum's k-th row (Sainte-Lague
order), so the first n rows (a `--limit n` dev slice) hold each stratum close to n * q_s / m.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

from fine_tune.errors import DatasetError

NO_STRATUM = "(none)"


def stratum_label(value: Hashable | None) -> str:
    """The label a row is stratified under: its value as text, or NO_STRATUM for null/empty."""
    text = "" if value is None else str(value).strip()
    return text or NO_STRATUM


def apportion(counts: Mapping[str, int], sizes: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Per split (in `sizes` order), how many rows each stratum gives: proportional to `counts`, largest remainder."""
    total = sum(counts.values())
    if sum(sizes.values()) > total:
        raise DatasetError(f"{sum(sizes.values())} rows requested but only {total} candidate rows to stratify")
    if total == 0:
        return {name: {} for name in sizes}
    remaining = dict(counts)
    strata = sorted(counts)
    quotas: dict[str, dict[str, int]] = {}
    for name, size in sizes.items():
        ideal = {s: size * counts[s] / total for s in strata}
        quota = {s: min(math.floor(ideal[s]), remaining[s]) for s in strata}
        while sum(quota.values()) < size:
            open_strata = [s for s in strata if quota[s] < remaining[s]]
            # the largest shortfall first; the same stratum may take several rows when caps bind elsewhere
            best = max(open_strata, key=lambda s: (ideal[s] - quota[s], -strata.index(s)))
            quota[best] += 1
        for s in strata:
            remaining[s] -= quota[s]
        quotas[name] = {s: quota[s] for s in strata if quota[s]}
    return quotas


def stratified_assignment(labels: Sequence[Hashable | None], sizes: Mapping[str, int]) -> dict[str, list[int]]:
    """Positions into `labels` (the candidates, already in shuffled order) per split, each split interleaved."""
    names = [stratum_label(label) for label in labels]
    by_stratum: dict[str, list[int]] = {}
    for position, name in enumerate(names):
        by_stratum.setdefault(name, []).append(position)
    quotas = apportion({s: len(p) for s, p in by_stratum.items()}, sizes)
    taken = Counter()
    assignment: dict[str, list[int]] = {}
    for split, quota in quotas.items():
        picked = {}
        for stratum, count in quota.items():
            picked[stratum] = by_stratum[stratum][taken[stratum] : taken[stratum] + count]
            taken[stratum] += count
        assignment[split] = interleave(picked)
    return assignment


def interleave(by_stratum: Mapping[str, Sequence[int]]) -> list[int]:
    """One list of the strata's positions, the k-th of a stratum of q placed at (k + 1/2) / q (Sainte-Lague order;
    ties by stratum name)."""
    keyed = []
    strata = sorted((stratum, rows) for stratum, rows in by_stratum.items() if rows)
    for rank, (_, rows) in enumerate(strata):
        keyed += [((k + 0.5) / len(rows), rank, position) for k, position in enumerate(rows)]
    return [position for _, _, position in sorted(keyed)]


def stratum_counts(labels: Sequence[Hashable | None]) -> dict[str, int]:
    """Rows per stratum label, sorted by label (what the split manifest records per split)."""
    return dict(sorted(Counter(stratum_label(label) for label in labels).items()))
