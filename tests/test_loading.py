"""The one reader (`fine_tune.data.reading`): local files, save_to_disk folders and Hub IDs, read for any task."""

import json
import time

import datasets
import pytest

from fine_tune import hub_access as hub
from fine_tune.constants import MEDMCQA_HUB_ID
from fine_tune.data.normalise import load_task
from fine_tune.data.reading import read_task_rows
from fine_tune.errors import DatasetError
from fine_tune.task.spec import resolve_task

MEDMCQA = resolve_task("medmcqa")


def make_row(i: int, **overrides) -> dict:
    row = {"id": f"q{i}", "question": f"Question number {i}?", "opa": f"alpha {i}", "opb": f"beta {i}"}
    row.update({"opc": f"gamma {i}", "opd": f"delta {i}", "cop": i % 4, "choice_type": "single"})
    return {**row, "exp": "because" if i % 2 else None, "subject_name": "Anatomy", "topic_name": None, **overrides}


@pytest.fixture(scope="module")
def small_rows() -> list[dict]:
    return [make_row(i) for i in range(12)]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet", ".csv"])
def test_load_files(tmp_path, small_rows, suffix):
    path = tmp_path / f"rows{suffix}"
    source = datasets.Dataset.from_list(small_rows)
    if suffix == ".jsonl":
        source.to_json(path)
    elif suffix == ".json":
        path.write_text(json.dumps(small_rows))
    elif suffix == ".parquet":
        source.to_parquet(path)
    else:
        source.to_csv(path, index=False)
    normalised = load_task(MEDMCQA, "train", str(path))
    assert normalised.report.valid == len(small_rows)
    assert normalised.dataset["question"] == [r["question"] for r in small_rows]
    assert normalised.dataset["answer"] == [r["cop"] for r in small_rows]
    assert normalised.dataset["exp"] == [r["exp"] for r in small_rows]


def test_load_save_to_disk_dataset_and_dataset_dict(tmp_path, small_rows):
    datasets.Dataset.from_list(small_rows).save_to_disk(str(tmp_path / "plain"))
    assert len(read_task_rows(MEDMCQA, "train", str(tmp_path / "plain")).dataset) == 12
    parts = {"train": small_rows[:5], "validation": small_rows[5:]}
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in parts.items()}).save_to_disk(tmp_path / "dict")
    assert len(read_task_rows(MEDMCQA, "validation", str(tmp_path / "dict")).dataset) == 7
    with pytest.raises(DatasetError, match="split 'test' not in .*available: train, validation"):
        read_task_rows(MEDMCQA, "test", str(tmp_path / "dict"))


def test_load_folder_of_split_files(tmp_path, small_rows):
    datasets.Dataset.from_list(small_rows[:4]).to_json(tmp_path / "validation.jsonl")
    assert len(read_task_rows(MEDMCQA, "validation", str(tmp_path)).dataset) == 4
    with pytest.raises(DatasetError, match="train.jsonl"):
        read_task_rows(MEDMCQA, "train", str(tmp_path))


def test_absent_optional_columns_are_read_as_null(tmp_path):
    required = ("question", "opa", "opb", "opc", "opd", "cop")
    path = tmp_path / "partial.jsonl"
    datasets.Dataset.from_list([{k: make_row(i)[k] for k in required} for i in range(3)]).to_json(path)
    normalised = load_task(MEDMCQA, "train", str(path))
    assert normalised.report.valid == 3 and normalised.report.examples == {}
    assert normalised.dataset["id"] == [None] * 3 and normalised.dataset["subject"] == [None] * 3


def test_missing_required_columns_are_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    datasets.Dataset.from_list([{"question": "q?", "opa": "a", "opb": "b", "answer": 1}]).to_json(path)
    with pytest.raises(DatasetError, match=r"task medmcqa: column\(s\) opc, opd, cop not in the data"):
        load_task(MEDMCQA, "train", str(path))


def test_bad_local_sources(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_task_rows(MEDMCQA, "train", str(tmp_path / "nope.jsonl"))
    (tmp_path / "rows.txt").write_text("hello")
    with pytest.raises(DatasetError, match="unsupported file type"):
        read_task_rows(MEDMCQA, "train", str(tmp_path / "rows.txt"))
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(DatasetError, match="could not read"):
        read_task_rows(MEDMCQA, "train", str(tmp_path / "broken.parquet"))


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
        read_task_rows(MEDMCQA, "train", MEDMCQA_HUB_ID)
    assert time.monotonic() - start < 2
    assert "hf_secret_never_printed" not in str(error.value)


def test_hub_unreachable_fails_fast(online_env):
    online_env.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(DatasetError, match="unreachable.*local path"):
        read_task_rows(MEDMCQA, "train", MEDMCQA_HUB_ID)
    assert time.monotonic() - start < 7


def test_hub_id_without_offline_flag_fails_within_seconds(online_env):
    """No network here: unreachable; with network: this ID does not exist. Either way a quick DatasetError."""
    start = time.monotonic()
    with pytest.raises(DatasetError, match="local path") as error:
        read_task_rows(MEDMCQA, "train", "fine-tune-tests/no-such-dataset-3f9c2")
    assert time.monotonic() - start < 15
    assert "hf_secret_never_printed" not in str(error.value)


def test_hub_load_passes_the_token_and_the_rows_get_the_source_columns(online_env):
    calls = []

    def fake_load_dataset(hub_id, split, token):
        calls.append((hub_id, split, token))
        return datasets.Dataset.from_list([{k: v for k, v in make_row(0).items() if k != "topic_name"}])

    online_env.setattr(hub, "hub_reachable", lambda endpoint: True)
    online_env.setattr(datasets, "load_dataset", fake_load_dataset)
    normalised = load_task(MEDMCQA, "validation", MEDMCQA_HUB_ID)
    assert calls == [(MEDMCQA_HUB_ID, "validation", "hf_secret_never_printed")]
    assert normalised.report.valid == 1


def test_hub_errors_are_explained_without_the_token(online_env):
    def failing_load_dataset(hub_id, split, token):
        raise ConnectionError(f"401 for token {token}")

    online_env.setattr(hub, "hub_reachable", lambda endpoint: True)
    online_env.setattr(datasets, "load_dataset", failing_load_dataset)
    with pytest.raises(DatasetError, match=r"401 for token \*\*\*.*\$HF_TOKEN") as error:
        read_task_rows(MEDMCQA, "train", MEDMCQA_HUB_ID)
    assert "hf_secret_never_printed" not in str(error.value)
