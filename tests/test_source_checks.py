"""Every model, tokenizer, lineage, manifest and config read: a missing local path is "not found" with its nearest
sibling, and a Hub that cannot answer is one line within 5 s naming what was being loaded (never minutes of
retries)."""

import contextlib
import runpy
import socket
import time
from pathlib import Path

import pytest

from fine_tune import hub_access as hub
from fine_tune.errors import ModelSourceError

BOUND_S = 5.0
REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def endpoint(monkeypatch, kind: str):
    """HF_ENDPOINT at a closed 127.0.0.1 port ("closed") or at a server that accepts and never answers ("silent")."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    if kind == "silent":
        listener.listen(8)
    port = listener.getsockname()[1]
    if kind == "closed":
        listener.close()
    for name in hub.OFFLINE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    try:
        yield
    finally:
        listener.close()


def loaders():
    """(what is loaded, the call) for every Hub read the project makes for a model."""
    from fine_tune.evaluate.split_check import fetch_split_manifest
    from fine_tune.models.known_shapes import read_model_config
    from fine_tune.models.lineage import read_lineage
    from fine_tune.models.loading import load_causal_lm, load_tokenizer

    return {
        "tokenizer": lambda: load_tokenizer("someone/some-model"),
        "model": lambda: load_causal_lm("someone/some-model", "auto"),
        "lineage.json": lambda: read_lineage("someone/some-model"),
        "split_manifest.json": lambda: fetch_split_manifest("someone/some-model", "unused"),
        "config.json": lambda: read_model_config("someone/some-model"),
    }


@pytest.mark.parametrize("kind", ["closed", "silent"])
def test_an_unreachable_hub_is_one_line_within_five_seconds_naming_what_was_loaded(monkeypatch, kind, tmp_path):
    monkeypatch.chdir(tmp_path)
    chosen = loaders() if kind == "closed" else {"tokenizer": loaders()["tokenizer"]}  # a silent one costs 2.5 s
    with endpoint(monkeypatch, kind):
        for what, load in chosen.items():
            started = time.monotonic()
            with pytest.raises(ModelSourceError) as raised:
                load()
            elapsed = time.monotonic() - started
            message = str(raised.value)
            assert elapsed < BOUND_S, (what, elapsed)
            assert "unreachable" in message and "someone/some-model" in message, message
            assert what in message or what == "model", message
            assert "\n" not in message


def test_the_memory_planner_uses_the_stored_shape_of_a_known_base_at_once(monkeypatch):
    from fine_tune.models.known_shapes import KNOWN_MODEL_CONFIGS, read_model_config

    known = next(iter(KNOWN_MODEL_CONFIGS))
    with endpoint(monkeypatch, "closed"):
        started = time.monotonic()
        assert read_model_config(known) == KNOWN_MODEL_CONFIGS[known]
        assert time.monotonic() - started < BOUND_S


def test_offline_a_hub_id_missing_from_the_cache_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda repo_id, filename: None)
    with pytest.raises(ModelSourceError, match="offline mode is set .* not in the local Hugging Face cache"):
        hub.require_source("someone/some-model", "tokenizer")


def test_a_mistyped_local_model_path_is_not_found_with_its_nearest_sibling(monkeypatch, tmp_path):
    (tmp_path / "demo_artifacts" / "tiny-model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: pytest.fail("a local path was sent to the Hub"))
    from fine_tune.models.loading import load_tokenizer

    started = time.monotonic()
    with pytest.raises(ModelSourceError) as raised:
        load_tokenizer("demo_artifacts/tiny-modle")
    assert time.monotonic() - started < 1
    assert str(raised.value) == (
        "tokenizer not found: demo_artifacts/tiny-modle (nearest existing: demo_artifacts/tiny-model)"
    )


def test_the_nearest_sibling_keeps_the_rest_of_the_path_when_it_exists(monkeypatch, tmp_path):
    (tmp_path / "outputs" / "medqa-sft" / "merged").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert hub.nearest_existing("outputs/medqa-stf/merged") == "outputs/medqa-sft/merged"
    assert hub.nearest_existing("outputs/zzzzzz/merged") is None
    assert hub.nearest_existing(str(tmp_path / "outptus")) == str(tmp_path / "outputs")


def test_a_path_under_an_existing_folder_is_never_a_hub_id(monkeypatch, tmp_path):
    from fine_tune.hub_access import is_hub_id, written_as_path

    (tmp_path / "outputs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert written_as_path("outputs/medmcqa-sft") and not is_hub_id("outputs/medmcqa-sft")
    assert is_hub_id("Qwen/Qwen3-0.6B") and not written_as_path("Qwen/Qwen3-0.6B")


def test_a_missing_dataset_path_names_its_nearest_sibling(monkeypatch, tmp_path):
    from fine_tune.data.reading import read_task_rows
    from fine_tune.errors import DatasetError
    from fine_tune.task.spec import resolve_task

    (tmp_path / "demo_artifacts").mkdir()
    (tmp_path / "demo_artifacts" / "synthetic.jsonl").write_text("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"not found: demo_artifacts/synthtic.jsonl \(nearest existing: demo_"):
        read_task_rows(resolve_task("medmcqa"), "train", "demo_artifacts/synthtic.jsonl")


def test_validate_dataset_with_a_hub_tokenizer_and_no_network_is_one_line(monkeypatch, tmp_path, capsys):
    main = runpy.run_path(str(REPO / "scripts" / "validate_dataset.py"), run_name="validate_dataset")["main"]
    data = tmp_path / "rows.jsonl"
    data.write_text("")
    with endpoint(monkeypatch, "closed"):
        started = time.monotonic()
        code = main(["--dataset_name", str(data), "--tokenizer", "Qwen/Qwen3-0.6B"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.monotonic() - started < BOUND_S
    assert err.startswith("error: cannot load tokenizer Qwen/Qwen3-0.6B: the Hugging Face Hub") and "\n" not in err
