"""What every split shares (`fine_tune.data.splits`): the shuffle order and the split manifest."""

import os

import datasets
import pytest

from fine_tune.data.normalise import normalise_dataset
from fine_tune.data.splits import (
    check_disjoint,
    contamination_count,
    manifest_hash,
    read_manifest,
    shuffle_order,
    write_manifest,
)
from fine_tune.data.synthetic import generate_rows
from fine_tune.data.task_splits import split_normalised
from fine_tune.errors import DatasetError
from fine_tune.task.spec import resolve_task

MEDMCQA = resolve_task("medmcqa")


@pytest.fixture(scope="module")
def normalised():
    return normalise_dataset(MEDMCQA, datasets.Dataset.from_list(generate_rows(400, seed=2)))


def manifest(normalised, seed=42, sizes=None):
    sizes = sizes or {"sft": 100, "grpo": 50, "eval": 20}
    return split_normalised(MEDMCQA, normalised, sizes, seed, source="mem").manifest


def test_shuffle_order_is_what_dataset_shuffle_applies():
    rows = datasets.Dataset.from_dict({"i": list(range(500))})
    assert rows.select(shuffle_order(len(rows), 42))["i"] == rows.shuffle(seed=42)["i"]


def test_manifest_round_trip_and_stable_hash(tmp_path, normalised):
    first = manifest(normalised)
    path = tmp_path / "sub" / "manifest.json"
    write_manifest(first, path)
    assert read_manifest(path) == first
    assert manifest_hash(read_manifest(path)) == manifest_hash(first) == manifest_hash(manifest(normalised))
    assert manifest_hash(dict(reversed(list(first.items())))) == manifest_hash(first)
    assert manifest_hash(manifest(normalised, seed=1)) != manifest_hash(first)
    assert os.listdir(path.parent) == ["manifest.json"]


def test_read_manifest_errors(tmp_path):
    with pytest.raises(DatasetError, match="could not read the split manifest"):
        read_manifest(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DatasetError, match="could not read the split manifest"):
        read_manifest(tmp_path / "bad.json")


def test_contamination_check_catches_injected_overlap(normalised):
    injected = manifest(normalised)
    check_disjoint(injected)
    injected["splits"]["eval"]["content_hashes"].append(injected["splits"]["sft"]["content_hashes"][3])
    injected["splits"]["grpo"]["content_hashes"] += injected["splits"]["eval"]["content_hashes"][:2]
    assert contamination_count(injected) == 3
    with pytest.raises(DatasetError, match="sft/eval: 1.*grpo/eval: 2"):
        check_disjoint(injected)


def test_split_sizes_are_checked_and_ordered_as_the_splits_are():
    from fine_tune.data.splits import check_sizes

    assert list(check_sizes({"eval": 2, "sft": 5})) == ["sft", "eval"]  # SFT, GRPO, EVAL order, absent ones left out
    assert check_sizes({"sft": 0, "grpo": 3}) == {"sft": 0, "grpo": 3}  # 0 is a size
    for bad in ({"sft": -1}, {"sft": 1.5}, {"grpo": True}, {"eval": "3"}):
        with pytest.raises(DatasetError, match=r"split sizes must be non-negative integers, got \{"):
            check_sizes(bad)
    with pytest.raises(DatasetError, match=r"unknown split name\(s\) train, dev; expected sft, grpo, eval"):
        check_sizes({"train": 1, "dev": 2, "sft": 1})


def test_counts_and_sizes_read_as_the_messages_print_them():
    from fine_tune.data.splits import format_counts, format_sizes

    assert format_counts({"missing_answer": 2, "duplicate_content": 1}) == "missing_answer: 2, duplicate_content: 1"
    assert format_sizes({"sft": 10, "grpo": 5, "eval": 2}) == "sft=10/grpo=5/eval=2"


def test_the_manifest_hash_is_the_sha256_of_its_canonical_json():
    import hashlib

    manifest_ = {"b": [1, 2], "a": "é"}
    canonical = '{"a":"é","b":[1,2]}'
    assert manifest_hash(manifest_) == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_the_splits_hash_ignores_only_the_dev_record(normalised):
    from fine_tune.data.splits import DEV_KEY, splits_hash, splits_only

    base = manifest(normalised)
    with_dev = {**base, DEV_KEY: {"phase": "sft", "rows": [1, 2]}}
    assert splits_only(with_dev) == base and DEV_KEY in with_dev
    assert splits_hash(with_dev) == splits_hash(base) == manifest_hash(base) != manifest_hash(with_dev)
    assert splits_hash({**base, "seed": 7}) != splits_hash(base)


def test_a_manifest_is_read_as_utf8_and_a_missing_one_is_named(tmp_path):
    path = tmp_path / "m.json"
    path.write_bytes('{"source": "données"}'.encode())
    assert read_manifest(path) == {"source": "données"}
    with pytest.raises(DatasetError, match=f"could not read the split manifest {tmp_path / 'absent.json'}: "):
        read_manifest(tmp_path / "absent.json")
