"""The lineage record beside every saved model (`fine_tune.models.lineage`): what training writes and what eval, GRPO,
model cards and saving read back, on a local folder and on the Hub (fakes bound to the real signatures)."""

import copy
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub.errors import EntryNotFoundError
from signatures import bound_to

import fine_tune
from fine_tune import hub_access
from fine_tune.errors import ModelSourceError
from fine_tune.models.lineage import (
    Lineage,
    model_config,
    quantization_record,
    read_lineage,
    read_lineage_record,
    run_config,
    script_config,
    training_config,
)
from fine_tune.provenance import git_commit

# the keys eval (split check, regressions, report), GRPO's SFT check, model cards and saving read from lineage.json
RECORD_KEYS = {
    "phase",
    "base",
    "config",
    "split_manifest_hash",
    "adapter_path",
    "quantization",
    "splits_hash",
    "selection",
    "project_version",
    "project_commit",
    "date",
}
ROLES = {"script": {"dataset_name": "medmcqa"}, "training": {"learning_rate": 2e-4}, "model": {"lora_r": 16}}
LEGACY = {  # before roles: keyed by class name, beside the run facts
    "MedMCQAScriptArguments": ROLES["script"],
    "MedSFTConfig": ROLES["training"],
    "ModelConfig": ROLES["model"],
    "epoch": 1.0,
    "global_step": 5,
    "world_size": 1,
}


def sft_lineage(**changes) -> Lineage:
    fields = {
        "phase": "sft",
        "base": "Qwen/Qwen3-0.6B",
        "config": copy.deepcopy({**ROLES, "world_size": 1, "global_step": 5}),
        "split_manifest_hash": "m" * 64,
        "splits_hash": "s" * 64,
        "selection": {"chosen_step": 5},
        "project_commit": "c" * 40,
        "date": "2026-12-06T07:00:00+00:00",
    }
    return Lineage(**{**fields, **changes})


@dataclass
class ScriptArgs:
    dataset_name: str = "medmcqa"
    tasks: list = field(default_factory=lambda: ["medmcqa"])


@dataclass
class TrainerArgs:
    """Like transformers' TrainingArguments: `to_dict` hides the token, and that is what the record must hold."""

    learning_rate: float = 2e-4
    hub_token: str | None = "hf_secret"

    def to_dict(self) -> dict:
        return {"learning_rate": self.learning_rate, "hub_token": "<HUB_TOKEN>"}


# run_config


def test_run_config_keys_each_dataclass_by_its_role_through_to_dict_where_it_has_one():
    config = run_config(ScriptArgs(), TrainerArgs(), ScriptArgs(dataset_name="other"))
    assert config == {
        "script": {"dataset_name": "medmcqa", "tasks": ["medmcqa"]},
        "training": {"learning_rate": 2e-4, "hub_token": "<HUB_TOKEN>"},
        "model": {"dataset_name": "other", "tasks": ["medmcqa"]},
    }
    assert "hf_secret" not in json.dumps(config)


def test_run_config_reads_back_by_role():
    record = {"config": run_config(ScriptArgs(), TrainerArgs(), ScriptArgs(dataset_name="other"))}
    assert script_config(record)["dataset_name"] == "medmcqa"
    assert training_config(record)["learning_rate"] == 2e-4
    assert model_config(record)["dataset_name"] == "other"


# training_config / model_config / script_config (and the role lookup behind them)


def test_each_role_of_a_record_keyed_by_role():
    record = sft_lineage().to_dict()
    assert (script_config(record), training_config(record), model_config(record)) == (
        ROLES["script"],
        ROLES["training"],
        ROLES["model"],
    )


@pytest.mark.parametrize("order", [list(LEGACY), list(reversed(LEGACY)), ["world_size", "ModelConfig", *LEGACY]])
def test_each_role_of_a_record_keyed_by_class_name_in_any_key_order(order):
    record = {"config": {name: LEGACY[name] for name in order}}
    assert script_config(record) == ROLES["script"]
    assert training_config(record) == ROLES["training"], "the trainer config, never TRL's ModelConfig"
    assert model_config(record) == ROLES["model"]


def test_a_role_keyed_entry_wins_over_a_class_keyed_one():
    record = {"config": {**LEGACY, "training": {"learning_rate": 1.0}}}
    assert training_config(record) == {"learning_rate": 1.0}
    assert model_config(record) == ROLES["model"]


def test_a_role_that_is_not_a_mapping_falls_back_to_the_class_keyed_entry():
    record = {"config": {"model": None, "ModelConfig": ROLES["model"]}}
    assert model_config(record) == ROLES["model"]


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"config": None},
        {"config": {}},
        {"config": {"world_size": 1, "global_step": 5, "epoch": 1.0}},
        {"config": {"SomeConfig": "not a mapping", "SomeArguments": 3, "ModelConfig": None}},
    ],
)
def test_a_record_without_a_role_gives_empty_dicts(record):
    assert (script_config(record), training_config(record), model_config(record)) == ({}, {}, {})


def test_a_role_read_is_a_copy_the_record_does_not_see_changed():
    for record in (json.loads(json.dumps(sft_lineage().to_dict())), {"config": json.loads(json.dumps(LEGACY))}):
        training_config(record)["learning_rate"] = 1.0
        assert training_config(record) == {"learning_rate": 2e-4}


# quantization_record


@pytest.mark.parametrize(
    "model",
    [object(), SimpleNamespace(config=object()), SimpleNamespace(config=SimpleNamespace(quantization_config=None))],
)
def test_a_model_loaded_without_quantisation_records_none(model):
    assert quantization_record(model) is None


def test_a_bitsandbytes_load_is_recorded_as_its_config_dict():
    import torch
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    record = quantization_record(SimpleNamespace(config=SimpleNamespace(quantization_config=config)))
    assert (record["load_in_4bit"], record["bnb_4bit_quant_type"], record["bnb_4bit_use_double_quant"]) == (
        True,
        "nf4",
        True,
    )
    assert record["bnb_4bit_compute_dtype"] == "bfloat16" and record["quant_method"] == "bitsandbytes"
    assert json.loads(json.dumps(record)) == record, "plain JSON, as lineage.json holds it"


def test_a_quantisation_config_kept_as_a_dict_is_recorded_with_dtypes_as_names():
    import torch

    config = {"load_in_8bit": True, "torch_dtype": torch.float16, "skip": ["lm_head"]}
    record = quantization_record(SimpleNamespace(config=SimpleNamespace(quantization_config=config)))
    assert record == {"load_in_8bit": True, "torch_dtype": "torch.float16", "skip": ["lm_head"]}
    assert config["torch_dtype"] is torch.float16, "the model's own config is left as it was"


# Lineage: defaults, to_dict / from_dict, replace, write


def test_a_new_record_names_this_project_its_commit_and_the_utc_time():
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    record = Lineage(phase="sft", base="Qwen/Qwen3-0.6B")
    after = dt.datetime.now(dt.timezone.utc)
    assert record.project_version == fine_tune.__version__
    assert record.project_commit == git_commit()
    written = dt.datetime.fromisoformat(record.date)
    assert written.utcoffset() == dt.timedelta(0) and before <= written <= after
    assert written.microsecond == 0, "seconds: the date is for people"
    assert (record.config, record.extra, record.quantization, record.adapter_path) == ({}, {}, None, None)


def test_to_dict_holds_every_field_by_name_and_no_extra_key():
    record = sft_lineage().to_dict()
    assert set(record) == RECORD_KEYS
    assert (record["phase"], record["base"], record["splits_hash"]) == ("sft", "Qwen/Qwen3-0.6B", "s" * 64)
    assert record["selection"] == {"chosen_step": 5} and record["config"]["training"] == ROLES["training"]


def test_unknown_keys_round_trip_beside_the_known_ones():
    written = {**sft_lineage().to_dict(), "future_key": [1, 2], "extra": "a key named like the field"}
    record = Lineage.from_dict(written)
    assert record.extra == {"future_key": [1, 2], "extra": "a key named like the field"}
    assert record.phase == "sft" and record.split_manifest_hash == "m" * 64
    assert record.to_dict() == written


def test_a_record_without_phase_or_base_reads_with_none():
    record = Lineage.from_dict({"config": {"x": 1}})
    assert (record.phase, record.base, record.config, record.extra) == (None, None, {"x": 1}, {})


def test_replace_gives_a_changed_copy():
    original = sft_lineage()
    changed = original.replace(base="local/base", adapter_path="out/adapter")
    assert (changed.base, changed.adapter_path, changed.phase) == ("local/base", "out/adapter", "sft")
    assert (original.base, original.adapter_path) == ("Qwen/Qwen3-0.6B", None)


def test_write_puts_lineage_json_in_the_folder_and_it_reads_back(tmp_path):
    record = sft_lineage(extra={"future_key": 1})
    path = record.write(tmp_path)
    assert path == tmp_path / "lineage.json"
    assert json.loads(path.read_text()) == record.to_dict()
    assert read_lineage_record(str(tmp_path)) == record
    assert read_lineage(str(tmp_path)) == record.to_dict()


def test_write_replaces_a_previous_record_whole_or_not_at_all(tmp_path, monkeypatch):
    sft_lineage().write(tmp_path)
    sft_lineage(phase="grpo").write(tmp_path)
    assert read_lineage(str(tmp_path))["phase"] == "grpo"

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("fine_tune.io.os.fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        sft_lineage(phase="broken").write(tmp_path)
    assert read_lineage(str(tmp_path))["phase"] == "grpo", "readers never see a half-written record"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lineage.json"], "no temp file left"


# read_lineage_record / read_lineage on a local folder


def test_a_local_folder_without_a_record_reads_as_none(tmp_path):
    assert read_lineage_record(str(tmp_path)) is None
    assert read_lineage(str(tmp_path)) is None


def test_a_subfolder_is_read_below_the_folder(tmp_path):
    sft_lineage(phase="merged-one").write(tmp_path / "merged")
    sft_lineage(phase="root-one").write(tmp_path)
    assert read_lineage(str(tmp_path), subfolder="merged")["phase"] == "merged-one"
    assert read_lineage_record(str(tmp_path), subfolder="merged").phase == "merged-one"
    assert read_lineage(str(tmp_path))["phase"] == "root-one"
    assert read_lineage(str(tmp_path), subfolder="adapter") is None


def test_a_folder_under_home_is_read_through_the_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    sft_lineage().write(tmp_path / "model")
    assert read_lineage("~/model")["phase"] == "sft"


def test_a_missing_local_path_fails_in_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSourceError, match=r"^model not found: ./outputs/medmcqa-sft/merged$"):
        read_lineage("./outputs/medmcqa-sft/merged")


# read_lineage_record / read_lineage on the Hub (no network: a bound fake, or the local fake Hub)


@pytest.fixture
def hub_answers(monkeypatch):
    """Offline switches off and the Hub reachable (the probe faked, bound to its real signature)."""
    for name in hub_access.OFFLINE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(
        hub_access, "hub_reachable", bound_to(hub_access.hub_reachable, lambda endpoint=None, timeout=5.0: True)
    )


def fake_download(monkeypatch, folder: Path, calls: list) -> None:
    def hf_hub_download(repo_id, filename, *, subfolder=None, token=None):
        calls.append((repo_id, filename, subfolder, token))
        path = folder / (subfolder or "") / filename
        if not path.is_file():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", bound_to(huggingface_hub.hf_hub_download, hf_hub_download))


def test_a_hub_record_is_downloaded_with_the_token_and_subfolder(tmp_path, monkeypatch, hub_answers):
    calls = []
    fake_download(monkeypatch, tmp_path, calls)
    record = sft_lineage()
    record.write(tmp_path / "merged")
    assert read_lineage_record("alice/medmcqa-sft", token="hf_x", subfolder="merged") == record
    assert read_lineage("alice/medmcqa-sft", token="hf_y", subfolder="merged") == record.to_dict()
    assert calls == [
        ("alice/medmcqa-sft", "lineage.json", "merged", "hf_x"),
        ("alice/medmcqa-sft", "lineage.json", "merged", "hf_y"),
    ]


def test_a_hub_repo_without_a_record_reads_as_none(tmp_path, monkeypatch, hub_answers):
    calls = []
    fake_download(monkeypatch, tmp_path, calls)
    assert read_lineage_record("Qwen/Qwen3-0.6B") is None
    assert read_lineage("Qwen/Qwen3-0.6B", token="hf_x") is None
    assert calls == [
        ("Qwen/Qwen3-0.6B", "lineage.json", None, None),
        ("Qwen/Qwen3-0.6B", "lineage.json", None, "hf_x"),
    ]


def test_offline_a_hub_record_not_in_the_cache_fails_in_one_line_naming_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelSourceError) as raised:
        read_lineage("alice/medmcqa-sft")
    message = str(raised.value)
    assert message.startswith("cannot load model alice/medmcqa-sft (lineage.json): offline mode is set"), message
    assert "\n" not in message


def test_the_fake_hub_serves_the_record_and_a_missing_one_reads_as_none(fake_hub):
    record = sft_lineage(phase="grpo")
    fake_hub.add_file("alice/medmcqa-grpo", "merged/lineage.json", json.dumps(record.to_dict()).encode())
    fake_hub.add_file("alice/medmcqa-grpo", "config.json", b"{}")
    assert read_lineage_record("alice/medmcqa-grpo", subfolder="merged") == record
    assert read_lineage("alice/medmcqa-grpo") is None
