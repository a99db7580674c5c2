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
