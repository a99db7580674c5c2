import json
import logging
import os
import time
from pathlib import Path

import datasets
import pytest

from fine_tune import hub_access as hub
from fine_tune.constants import DEFAULT_SPLIT_SIZES, MEDMCQA_HUB_ID
from fine_tune.data.loading import MEDMCQA_COLUMNS, load_medmcqa
from fine_tune.data.report import token_length_stats
from fine_tune.data.splits import (
    check_disjoint,
    contamination_count,
    load_eval_rows,
    load_split,
    manifest_hash,
    read_manifest,
    shuffle_order,
    split_dataset,
    write_manifest,
)
from fine_tune.data.validation import content_hash, require_usable, row_problems, validate_rows
from fine_tune.errors import DatasetError


def make_row(i: int, **overrides) -> dict:
    row = {
        "id": f"q{i}",
        "question": f"Question number {i}?",
        "opa": f"alpha {i}",
        "opb": f"beta {i}",
        "opc": f"gamma {i}",
        "opd": f"delta {i}",
        "cop": i % 4,
        "choice_type": "single",
        "exp": None,
        "subject_name": "Anatomy",
        "topic_name": None,
    }
    return {**row, **overrides}


def make_dataset(rows: list[dict]) -> datasets.Dataset:
    return datasets.Dataset.from_list(rows)


@pytest.fixture(scope="module")
def clean_2000() -> datasets.Dataset:
    return make_dataset([make_row(i) for i in range(2000)])


def test_each_reason_detected_with_counts_and_example_ids():
    rows = [make_row(i) for i in range(6)]
    rows += [make_row(i, question=q) for i, q in [(6, None), (7, ""), (8, "   ")]]
    rows += [make_row(9, opb=None), make_row(10, opc=""), make_row(11, opd=" \n")]
    rows += [make_row(i, cop=c) for i, c in [(12, -1), (13, 4), (14, None)]]
    report = validate_rows(make_dataset(rows))
    assert report.total == 15
    assert report.valid_indices == list(range(6))
    assert {name: len(ix) for name, ix in report.invalid.items()} == {
        "missing_question": 3,
        "missing_option": 3,
        "cop_out_of_range": 3,
    }
    assert report.invalid["missing_option"] == [9, 10, 11]
    assert report.examples["cop_out_of_range"] == ["q12", "q13", "q14"]


def test_examples_are_the_first_five_and_fall_back_to_row_index():
    rows = [make_row(i, id=None, cop=-1) for i in range(8)]
    report = validate_rows(make_dataset(rows))
    assert len(report.invalid["cop_out_of_range"]) == 8
    assert report.examples["cop_out_of_range"] == [f"row {i}" for i in range(5)]


@pytest.mark.parametrize(
    "overrides",
    [{"question": 5}, {"opa": 3.5}, {"cop": "1"}, {"cop": 1.0}, {"cop": True}],
)
def test_wrong_type(overrides):
    assert row_problems(make_row(0, **overrides)) == ["wrong_type"]


def test_wrong_type_column_in_a_dataset():
    rows = [make_row(i, cop=float(i % 4)) for i in range(3)]
    report = validate_rows(make_dataset(rows))
    assert len(report.invalid["wrong_type"]) == 3
    assert report.valid == 0


def test_duplicate_options_is_a_flag_not_a_drop():
    rows = [make_row(0), make_row(1, opa="Aspirin", opc="  aspirin "), make_row(2, opb="gamma 2")]
    report = validate_rows(make_dataset(rows))
    assert report.valid_indices == [0, 1, 2]
    assert report.flags == {"duplicate_options": [1, 2]}
    assert report.examples["duplicate_options"] == ["q1", "q2"]
    assert "duplicate_options: 2 rows" in report.summary()


def test_require_labels_false_skips_the_cop_check():
    rows = [make_row(i, cop=-1) for i in range(3)] + [make_row(3, question="")]
    report = validate_rows(make_dataset(rows), require_labels=False)
    assert report.valid_indices == [0, 1, 2]
    assert list(report.invalid) == ["missing_question"]


def test_summary_and_to_dict():
    rows = [make_row(0), make_row(1, cop=-1)]
    report = validate_rows(make_dataset(rows))
    summary = report.summary()
    assert "2 rows: 1 valid, 1 invalid" in summary
    assert "cop_out_of_range: 1 rows (e.g. q1)" in summary
    assert "unlabeled" in summary
    as_dict = report.to_dict()
    assert as_dict["invalid"] == {"cop_out_of_range": {"count": 1, "examples": ["q1"]}}
    assert as_dict["valid"] == 1
    json.dumps(as_dict)


def test_require_usable_names_reasons_and_counts():
    rows = [make_row(0), make_row(1, cop=-1), make_row(2, question=None)]
    report = validate_rows(make_dataset(rows))
    require_usable(report, 1)
    with pytest.raises(DatasetError) as error:
        require_usable(report, 2)
    message = str(error.value)
    assert "only 1 of 3 rows are usable but 2 are needed" in message
    assert "cop_out_of_range: 1 rows" in message
    assert "missing_question: 1 rows" in message
    assert "cop=-1" in message


def test_content_hash_normalises_case_and_whitespace_but_keeps_order():
    row = make_row(0)
    noisy = {**row, "question": "  QUESTION   number 0? ", "opa": "Alpha\t0"}
    assert content_hash(row) == content_hash(noisy)
    swapped = {**row, "opa": row["opb"], "opb": row["opa"]}
    assert content_hash(row) != content_hash(swapped)
    assert len(content_hash(row)) == 16


@pytest.fixture(scope="module")
def small_rows() -> list[dict]:
    return [make_row(i, exp="because" if i % 2 else None) for i in range(12)]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_load_files(tmp_path, small_rows, suffix):
    path = tmp_path / f"rows{suffix}"
    source = make_dataset(small_rows)
    if suffix == ".jsonl":
        source.to_json(path)
    elif suffix == ".json":
        path.write_text(json.dumps(small_rows))
    elif suffix == ".parquet":
        source.to_parquet(path)
    else:
        source.to_csv(path, index=False)
    loaded = load_medmcqa(str(path))
    assert loaded.column_names == list(MEDMCQA_COLUMNS)
    assert loaded["question"][:] == [r["question"] for r in small_rows]
    assert loaded["cop"][:] == [r["cop"] for r in small_rows]
    assert validate_rows(loaded).valid == len(small_rows)


def test_load_save_to_disk_dataset_and_dataset_dict(tmp_path, small_rows):
    make_dataset(small_rows).save_to_disk(str(tmp_path / "plain"))
    assert len(load_medmcqa(str(tmp_path / "plain"))) == 12
    dd = datasets.DatasetDict({"train": make_dataset(small_rows[:5]), "validation": make_dataset(small_rows[5:])})
    dd.save_to_disk(str(tmp_path / "dict"))
    assert len(load_medmcqa(str(tmp_path / "dict"), split="validation")) == 7
    with pytest.raises(DatasetError, match="split 'test' not in .*available: train, validation"):
        load_medmcqa(str(tmp_path / "dict"), split="test")


def test_load_folder_of_split_files(tmp_path, small_rows):
    make_dataset(small_rows[:4]).to_json(tmp_path / "validation.jsonl")
    assert len(load_medmcqa(str(tmp_path), split="validation")) == 4
    with pytest.raises(DatasetError, match="train.jsonl"):
        load_medmcqa(str(tmp_path), split="train")


def test_optional_columns_added_as_null(tmp_path):
    rows = [
        {k: v for k, v in make_row(i).items() if k in ("question", "opa", "opb", "opc", "opd", "cop")}
        for i in range(3)
    ]
    path = tmp_path / "partial.jsonl"
    make_dataset(rows).to_json(path)
    loaded = load_medmcqa(str(path))
    assert loaded.column_names == list(MEDMCQA_COLUMNS)
    assert loaded["id"][:] == [None] * 3
    assert loaded.features["exp"] == datasets.Value("string")
    assert validate_rows(loaded).examples == {}


def test_missing_required_columns_are_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    make_dataset([{"question": "q?", "opa": "a", "opb": "b", "answer": 1}]).to_json(path)
    with pytest.raises(DatasetError, match=r"missing MedMCQA column\(s\): opc, opd, cop"):
        load_medmcqa(str(path))


def test_bad_local_sources(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_medmcqa(str(tmp_path / "nope.jsonl"))
    (tmp_path / "rows.txt").write_text("hello")
    with pytest.raises(DatasetError, match="unsupported file type"):
        load_medmcqa(str(tmp_path / "rows.txt"))
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(DatasetError, match="could not read"):
        load_medmcqa(str(tmp_path / "broken.parquet"))


@pytest.fixture
def online_env(monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_secret_never_printed")
    return monkeypatch


def test_hub_id_offline_fails_fast(online_env):
    online_env.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(DatasetError, match="local path") as error:
        load_medmcqa(MEDMCQA_HUB_ID)
    assert time.monotonic() - start < 2
    assert "hf_secret_never_printed" not in str(error.value)


def test_hub_unreachable_fails_fast(online_env):
    online_env.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(DatasetError, match="unreachable.*local path"):
        load_medmcqa(MEDMCQA_HUB_ID)
    assert time.monotonic() - start < 7


def test_hub_id_without_offline_flag_fails_within_seconds(online_env):
    """No network here: unreachable; with network: this ID does not exist. Either way a quick DatasetError."""
    start = time.monotonic()
    with pytest.raises(DatasetError, match="local path") as error:
        load_medmcqa("fine-tune-tests/no-such-dataset-3f9c2")
    assert time.monotonic() - start < 15
    assert "hf_secret_never_printed" not in str(error.value)


def test_hub_load_passes_the_token_and_conforms_columns(online_env):
    calls = []

    def fake_load_dataset(hub_id, split, token):
        calls.append((hub_id, split, token))
        return make_dataset([{k: v for k, v in make_row(0).items() if k != "topic_name"}])

    online_env.setattr(hub, "hub_reachable", lambda endpoint: True)
    online_env.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = load_medmcqa(MEDMCQA_HUB_ID, split="validation")
    assert calls == [(MEDMCQA_HUB_ID, "validation", "hf_secret_never_printed")]
    assert loaded.column_names == list(MEDMCQA_COLUMNS)


def test_hub_errors_are_explained_without_the_token(online_env):
    def failing_load_dataset(hub_id, split, token):
        raise ConnectionError(f"401 for token {token}")

    online_env.setattr(hub, "hub_reachable", lambda endpoint: True)
    online_env.setattr(datasets, "load_dataset", failing_load_dataset)
    with pytest.raises(DatasetError, match=r"401 for token \*\*\*.*\$HF_TOKEN") as error:
        load_medmcqa(MEDMCQA_HUB_ID)
    assert "hf_secret_never_printed" not in str(error.value)


def test_shuffle_order_is_what_dataset_shuffle_applies(clean_2000):
    order = shuffle_order(len(clean_2000), 42)
    assert clean_2000.select(order)["id"][:] == clean_2000.shuffle(seed=42)["id"][:]


def test_split_reproduces_upstream_on_clean_data(clean_2000):
    result = split_dataset(clean_2000)
    upstream = clean_2000.shuffle(seed=42)
    bounds = {"sft": (0, 1000), "grpo": (1000, 1500), "eval": (1500, 1700)}
    for name, (start, stop) in bounds.items():
        assert result.splits[name]["id"][:] == upstream.select(range(start, stop))["id"][:]
        assert result.manifest["splits"][name]["shuffled_indices"] == list(range(start, stop))
    assert result.skipped == {}
    assert result.manifest["sizes"] == DEFAULT_SPLIT_SIZES
    assert result.manifest["dataset_fingerprint"] == clean_2000._fingerprint
    assert contamination_count(result.manifest) == 0


def test_split_skips_duplicates_and_invalid_rows_and_stays_disjoint():
    rows = [make_row(i) for i in range(300)]
    # 60 rows repeating earlier content (case/whitespace changed), 20 unlabeled rows
    rows += [make_row(i, id=f"dup{i}", question=f"  question NUMBER {i}?") for i in range(60)]
    rows += [make_row(1000 + i, cop=-1) for i in range(20)]
    result = split_dataset(make_dataset(rows), {"sft": 150, "grpo": 80, "eval": 40}, seed=7)
    assert {name: len(part) for name, part in result.splits.items()} == {"sft": 150, "grpo": 80, "eval": 40}
    hashes = [h for split in result.manifest["splits"].values() for h in split["content_hashes"]]
    assert len(hashes) == len(set(hashes)) == 270
    assert set(result.skipped) <= {"duplicate_content", "cop_out_of_range"}
    assert result.skipped["duplicate_content"] > 0
    assert result.skipped.get("cop_out_of_range", 0) > 0
    assert result.manifest["skipped"] == result.skipped
    for name, part in result.splits.items():
        assert part["id"][:] == result.manifest["splits"][name]["row_ids"]
        assert -1 not in part["cop"][:]


def test_split_not_enough_rows():
    ds = make_dataset([make_row(i) for i in range(50)])
    with pytest.raises(DatasetError, match="only 50 of 50 rows are usable but 60 are needed"):
        split_dataset(ds, {"sft": 30, "grpo": 20, "eval": 10})
    dups = make_dataset([make_row(i % 20, id=f"r{i}") for i in range(60)])
    with pytest.raises(DatasetError, match="only 20 distinct valid rows.*duplicate_content: 40"):
        split_dataset(dups, {"sft": 30, "grpo": 20, "eval": 10})


def test_split_rejects_bad_sizes(clean_2000):
    with pytest.raises(DatasetError, match="unknown split"):
        split_dataset(clean_2000, {"train": 10})
    with pytest.raises(DatasetError, match="non-negative"):
        split_dataset(clean_2000, {"sft": -1})


def test_manifest_round_trip_and_stable_hash(tmp_path, clean_2000):
    sizes = {"sft": 100, "grpo": 50, "eval": 20}
    manifest = split_dataset(clean_2000, sizes, source="mem").manifest
    path = tmp_path / "sub" / "manifest.json"
    write_manifest(manifest, path)
    assert read_manifest(path) == manifest
    assert manifest_hash(read_manifest(path)) == manifest_hash(manifest)
    assert manifest_hash(split_dataset(clean_2000, sizes, source="mem").manifest) == manifest_hash(manifest)
    assert manifest_hash(dict(reversed(list(manifest.items())))) == manifest_hash(manifest)
    assert manifest_hash(split_dataset(clean_2000, sizes, seed=1, source="mem").manifest) != manifest_hash(manifest)
    assert os.listdir(path.parent) == ["manifest.json"]


def test_read_manifest_errors(tmp_path):
    with pytest.raises(DatasetError, match="could not read the split manifest"):
        read_manifest(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DatasetError, match="could not read the split manifest"):
        read_manifest(tmp_path / "bad.json")


def test_contamination_check_catches_injected_overlap(clean_2000):
    manifest = split_dataset(clean_2000, {"sft": 100, "grpo": 50, "eval": 20}).manifest
    check_disjoint(manifest)
    manifest["splits"]["eval"]["content_hashes"].append(manifest["splits"]["sft"]["content_hashes"][3])
    manifest["splits"]["grpo"]["content_hashes"] += manifest["splits"]["eval"]["content_hashes"][:2]
    assert contamination_count(manifest) == 3
    with pytest.raises(DatasetError, match="sft/eval: 1.*grpo/eval: 2"):
        check_disjoint(manifest)


def test_load_split_writes_manifest_and_logs_skips(tmp_path, caplog):
    rows = [make_row(i) for i in range(100)] + [make_row(0, id="copy")] + [make_row(200, question=" ")]
    path = tmp_path / "rows.jsonl"
    make_dataset(rows).to_json(path)
    manifest_path = tmp_path / "manifest.json"
    sizes = {"sft": 60, "grpo": 30, "eval": 10}
    with caplog.at_level(logging.INFO, logger="fine_tune.data"):
        grpo, manifest = load_split(str(path), "grpo", sizes=sizes, seed=3, manifest_path=manifest_path)
    assert len(grpo) == 30
    assert read_manifest(manifest_path) == manifest
    assert manifest["source"] == str(path)
    assert grpo["id"][:] == manifest["splits"]["grpo"]["row_ids"]
    assert "1 invalid (missing_question: 1)" in caplog.text
    assert "skipped" in caplog.text
    with pytest.raises(DatasetError, match="unknown split"):
        load_split(str(path), "test", sizes=sizes)


def test_load_eval_rows_drops_and_reports_invalid(tmp_path, caplog):
    path = tmp_path / "val.jsonl"
    make_dataset([make_row(i) for i in range(10)] + [make_row(10, cop=-1)]).to_json(path)
    with caplog.at_level(logging.WARNING, logger="fine_tune.data"):
        rows, report = load_eval_rows(str(path))
    assert len(rows) == 10
    assert report.n_invalid == 1
    assert "dropped 1 of 11 rows (cop_out_of_range: 1)" in caplog.text


@pytest.fixture(scope="module")
def real_validation(shared_dir: Path) -> datasets.Dataset:
    return load_medmcqa(str(shared_dir / "data/medmcqa/validation.jsonl"))


def test_real_validation_rows_load_and_validate(real_validation):
    report = validate_rows(real_validation)
    assert report.total == report.valid == 4183
    assert len(report.flags["duplicate_options"]) > 0


def test_real_validation_split_is_disjoint_and_upstream(real_validation):
    result = split_dataset(real_validation, DEFAULT_SPLIT_SIZES)
    assert {name: len(part) for name, part in result.splits.items()} == DEFAULT_SPLIT_SIZES
    assert contamination_count(result.manifest) == 0
    upstream = real_validation.shuffle(seed=42).select(range(1000))
    assert result.splits["sft"]["id"][:] == upstream["id"][:]


def test_real_unlabeled_rows_are_refused(shared_dir):
    source = str(shared_dir / "data/medmcqa/test_unlabeled.jsonl")
    with pytest.raises(DatasetError) as error:
        load_split(source, "sft")
    assert "cop=-1" in str(error.value)
    assert "unlabeled" in str(error.value)
    with pytest.raises(DatasetError, match="unlabeled"):
        load_eval_rows(source)
    assert validate_rows(load_medmcqa(source), require_labels=False).valid == 6150


def test_real_partial_rows_are_usable(shared_dir):
    source = str(shared_dir / "data/medmcqa/train_subset1000_partial.jsonl")
    sft, manifest = load_split(source, "sft", sizes={"sft": 600, "grpo": 300, "eval": 100})
    assert len(sft) == 600
    assert all(row_id.startswith("row ") for row_id in manifest["splits"]["sft"]["row_ids"])
    assert contamination_count(manifest) == 0


def test_real_token_lengths(shared_dir, real_validation):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(shared_dir / "tokenizers/qwen3"))
    stats = token_length_stats(real_validation, tokenizer, max_rows=500)
    assert stats["rows"] == 500
    assert 100 < stats["prompt"]["mean"] < 400
    assert stats["prompt"]["p50"] <= stats["prompt"]["p95"] <= stats["prompt"]["max"]
    assert stats["full"]["mean"] > stats["prompt"]["mean"]
