"""What a job does around the entry script: resume from the checkpoint a killed job pushed
(fine_tune.train.checkpoints, one rule for a complete checkpoint), fetch a split manifest
(fine_tune.evaluate.split_check), publish eval results (fine_tune.hub.publish); huggingface_hub faked offline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub import HfApi
from jobs_fakes import FAKE_TOKEN, bound_to, fake_hf_api

from fine_tune import constants, hub_access
from fine_tune.evaluate import split_check
from fine_tune.hub import publish
from fine_tune.train import checkpoints

pytest_plugins = ["jobs_fakes"]  # fixtures: clean_env


# A valid safetensors file (8-byte header length, JSON header, data): the complete-checkpoint rule checks its length.
_ADAPTER_HEADER = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
ADAPTER_BYTES = len(_ADAPTER_HEADER).to_bytes(8, "little") + _ADAPTER_HEADER + bytes(4)


def fake_snapshot(step: int | None, calls: list):
    def snapshot_download(repo_id, *, allow_patterns=None, local_dir=None, token=None, revision=None):
        calls.append({"repo_id": repo_id, "allow_patterns": allow_patterns, "token": token, "revision": revision})
        if step is not None:
            folder = Path(local_dir) / constants.HUB_CHECKPOINT_DIR
            folder.mkdir(parents=True)
            (folder / constants.TRAINER_STATE_FILE).write_text(json.dumps({"global_step": step}))
            (folder / "adapter_model.safetensors").write_bytes(ADAPTER_BYTES)
        return str(local_dir)

    return bound_to(huggingface_hub.snapshot_download, snapshot_download)


def training_args(output_dir, **kwargs):
    values = {
        "resume_from_checkpoint": "latest",
        "push_to_hub": True,
        "hub_model_id": "alice/medmcqa-sft",
        "output_dir": str(output_dir),
        "hub_revision": None,
    }
    return SimpleNamespace(**{**values, **kwargs})


@pytest.fixture
def reachable(monkeypatch, clean_env):
    monkeypatch.setattr("fine_tune.hub_access.hub_reachable", lambda endpoint, timeout=5.0: True)
    return monkeypatch


def test_fetch_checkpoint_places_last_checkpoint_where_latest_resume_finds_it(tmp_path, reachable):
    from fine_tune.train.checkpoints import last_complete_checkpoint

    calls: list = []
    reachable.setattr("huggingface_hub.snapshot_download", fake_snapshot(8, calls))
    reachable.setenv("HF_TOKEN", FAKE_TOKEN)
    out = tmp_path / "out"
    path = checkpoints.fetch_checkpoint_for_resume(training_args(out))
    assert path == out / "checkpoint-8"
    assert last_complete_checkpoint(out) == str(out / "checkpoint-8")
    assert (path / "adapter_model.safetensors").read_bytes() == ADAPTER_BYTES
    (call,) = calls
    assert call == {"repo_id": "alice/medmcqa-sft", "allow_patterns": ["last-checkpoint/*"], "token": FAKE_TOKEN} | {
        "revision": None
    }
    assert [p.name for p in out.iterdir()] == ["checkpoint-8"], "no temporary folder is left behind"


def test_a_local_checkpoint_cut_off_mid_save_does_not_count_as_present(tmp_path, reachable):
    """[robust 12] a checkpoint folder without trainer_state.json skipped the Hub download: the run restarted at
    step 0. The job side uses the resume's own rule (last_complete_checkpoint)."""
    calls: list = []
    reachable.setattr("huggingface_hub.snapshot_download", fake_snapshot(12, calls))
    out = tmp_path / "out"
    (out / "checkpoint-10").mkdir(parents=True)
    (out / "checkpoint-10" / "adapter_model.safetensors").write_bytes(b"half")
    assert checkpoints.fetch_checkpoint_for_resume(training_args(out)) == out / "checkpoint-12"
    assert len(calls) == 1
    complete = tmp_path / "complete" / "checkpoint-4"
    complete.mkdir(parents=True)
    (complete / constants.TRAINER_STATE_FILE).write_text(json.dumps({"global_step": 4}))
    assert checkpoints.fetch_checkpoint_for_resume(training_args(complete.parent)) is None
    assert len(calls) == 1, "a complete local checkpoint needs no download"


def test_fetch_checkpoint_does_nothing_when_not_needed(tmp_path, reachable):
    calls: list = []
    reachable.setattr("huggingface_hub.snapshot_download", fake_snapshot(8, calls))
    assert checkpoints.fetch_checkpoint_for_resume(training_args(tmp_path / "a", resume_from_checkpoint=None)) is None
    assert checkpoints.fetch_checkpoint_for_resume(training_args(tmp_path / "b", push_to_hub=False)) is None
    assert (
        checkpoints.fetch_checkpoint_for_resume(training_args(tmp_path / "c", resume_from_checkpoint="ckpt/x")) is None
    )
    assert calls == []


def test_fetch_checkpoint_without_one_on_the_hub_starts_fresh(tmp_path, reachable):
    reachable.setattr("huggingface_hub.snapshot_download", fake_snapshot(None, []))
    assert checkpoints.fetch_checkpoint_for_resume(training_args(tmp_path / "out")) is None
    assert list((tmp_path / "out").iterdir()) == []


def test_fetch_checkpoint_offline_fails_fast_with_the_fix(tmp_path, monkeypatch, clean_env):
    from fine_tune.errors import ModelSourceError

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("huggingface_hub.snapshot_download", lambda *a, **k: pytest.fail("download attempted"))
    started = time.monotonic()
    with pytest.raises(ModelSourceError, match="unreachable"):
        checkpoints.fetch_checkpoint_for_resume(training_args(tmp_path / "out"))
    assert time.monotonic() - started < hub_access.HUB_TIMEOUT_S + 3


def test_fetch_split_manifest_downloads_the_file_of_one_repo(tmp_path, monkeypatch, clean_env):
    calls = []

    def hf_hub_download(repo_id, filename, *, local_dir=None, token=None):
        calls.append((repo_id, filename, str(local_dir), token))
        return str(Path(local_dir) / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", bound_to(huggingface_hub.hf_hub_download, hf_hub_download))
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setattr("fine_tune.hub_access.hub_reachable", lambda endpoint, timeout=5.0: True)
    path = split_check.fetch_split_manifest("alice/medmcqa-grpo", tmp_path)
    assert path == tmp_path / constants.SPLIT_MANIFEST_FILE
    assert calls == [("alice/medmcqa-grpo", constants.SPLIT_MANIFEST_FILE, str(tmp_path), FAKE_TOKEN)]


def test_publish_eval_results_uploads_and_updates_the_scored_models_cards(tmp_path, monkeypatch, clean_env):
    from test_model_card import fake_results

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    run = tmp_path / "eval_results" / "medmcqa-split"
    run.mkdir(parents=True)
    (run / "eval_results.json").write_text(json.dumps(fake_results()))
    calls = []
    fake_hf_api(monkeypatch, "create_repo", lambda api, repo_id, **kw: calls.append(("create_repo", repo_id, kw)))
    fake_hf_api(monkeypatch, "upload_folder", lambda api, **kw: calls.append(("upload_folder", kw)))
    fake_hf_api(monkeypatch, "upload_file", lambda api, **kw: calls.append(("upload_file", kw)))
    monkeypatch.setattr("huggingface_hub.hf_hub_download", bound_to(huggingface_hub.hf_hub_download, missing_file))
    written = publish.publish_eval_results(tmp_path / "eval_results", "alice/medmcqa-eval-results")
    assert calls[0] == (
        "create_repo",
        "alice/medmcqa-eval-results",
        {"repo_type": "dataset", "private": True, "exist_ok": True},
    )
    assert calls[1][1]["repo_type"] == "dataset" and Path(calls[1][1]["folder_path"]) == tmp_path / "eval_results"
    cards = [call[1] for call in calls if call[0] == "upload_file"]
    assert [kw["repo_id"] for kw in cards] == ["alice/medmcqa-sft", "alice/medmcqa-grpo"], "never the base's repo"
    assert all(b"| **grpo** |" in kw["path_or_fileobj"] for kw in cards)
    assert written[1:] == ["alice/medmcqa-sft/README.md", "alice/medmcqa-grpo/README.md"]


def missing_file(repo_id, filename, *, local_dir=None, token=None):
    from huggingface_hub.errors import EntryNotFoundError

    raise EntryNotFoundError(f"{filename} not in {repo_id}")


def test_publish_eval_results_with_nothing_to_publish_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(HfApi, "create_repo", lambda *a, **k: pytest.fail("nothing to upload"))
    assert publish.publish_eval_results(tmp_path / "missing", "alice/r") == []
