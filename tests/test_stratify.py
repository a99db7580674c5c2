import random
from collections import Counter

import pytest

from fine_tune.data.stratify import NO_STRATUM, apportion, stratified_assignment, stratum_counts
from fine_tune.errors import DatasetError


def labels(counts: dict[str, int], seed: int = 0) -> list[str]:
    items = [name for name, n in counts.items() for _ in range(n)]
    random.Random(seed).shuffle(items)
    return items


def test_each_split_keeps_each_subjects_share():
    pool = labels({"anatomy": 600, "surgery": 300, "pharmacology": 100})
    sizes = {"sft": 100, "grpo": 50, "eval": 20}
    assignment = stratified_assignment(pool, sizes)
    assert {name: len(rows) for name, rows in assignment.items()} == sizes
    for name, rows in assignment.items():
        counts = Counter(pool[i] for i in rows)
        for subject, share in (("anatomy", 0.6), ("surgery", 0.3), ("pharmacology", 0.1)):
            assert abs(counts[subject] - share * sizes[name]) < 1, (name, counts)
    used = [i for rows in assignment.values() for i in rows]
    assert len(used) == len(set(used))  # disjoint


def test_every_prefix_is_stratified_too():
    pool = labels({"a": 500, "b": 250, "c": 250})
    rows = stratified_assignment(pool, {"eval": 200})["eval"]
    for n in (4, 10, 37, 100, 200):
        counts = Counter(pool[i] for i in rows[:n])
        assert abs(counts["a"] - n / 2) <= 1 and abs(counts["b"] - n / 4) <= 1, (n, counts)


def test_rows_of_a_stratum_keep_candidate_order_across_splits():
    pool = labels({"x": 30, "y": 30})
    assignment = stratified_assignment(pool, {"sft": 20, "grpo": 10, "eval": 10})
    xs = [i for i, name in enumerate(pool) if name == "x"]
    taken = [sorted(i for i in assignment[split] if pool[i] == "x") for split in ("sft", "grpo", "eval")]
    assert taken[0] + taken[1] + taken[2] == xs[: sum(len(t) for t in taken)]


def test_small_strata_are_capped_and_the_total_still_met():
    quotas = apportion({"rare": 1, "common": 99}, {"sft": 40, "grpo": 30, "eval": 30})
    assert [sum(q.values()) for q in quotas.values()] == [40, 30, 30]
    assert sum(q.get("rare", 0) for q in quotas.values()) == 1


def test_largest_remainder_is_deterministic_and_exact():
    assert apportion({"a": 1, "b": 1, "c": 1}, {"eval": 2}) == {"eval": {"a": 1, "b": 1}}
    assert apportion({"a": 2, "b": 1}, {"sft": 3}) == {"sft": {"a": 2, "b": 1}}


def test_too_few_rows_is_a_dataset_error():
    with pytest.raises(DatasetError, match="5 rows requested but only 3"):
        apportion({"a": 3}, {"sft": 5})


def test_missing_subjects_form_their_own_stratum():
    assert stratum_counts(["a", None, " ", "a"]) == {NO_STRATUM: 2, "a": 2}
