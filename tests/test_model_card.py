"""Model cards: rendering from lineage + split manifest + hyperparameters, the eval section, and the Hub calls of
push_to_hub / update_model_card_with_eval with huggingface_hub intercepted at its boundary (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest
import yaml
from hub_fakes import fake_hub_pushes
from huggingface_hub import HfApi
from signatures import patch_bound

from fine_tune.hub import model_card
from fine_tune.hub.model_card import (
    EVAL_END,
    EVAL_START,
    NO_EVAL_TEXT,
    card_for_output_dir,
    render_model_card,
    replace_eval_section,
    update_cards_from_results,
    update_model_card_with_eval,
)

SECRET = "hf_SECRETvalue9876543210zyxw"
EVAL_TABLE = "| model | accuracy |\n|---|---|\n| **grpo** | 41.0% |"


def lineage(phase: str = "sft", base: str = "Qwen/Qwen3-0.6B", **extra) -> dict:
    training = {
        "learning_rate": 2e-4,
        "max_steps": 800,
        "num_train_epochs": 3.0,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 4,
        "lr_scheduler_type": "cosine",
        "max_length": 1024,
        "precision": "auto",
        "fp16": True,
        "bf16": False,
        "seed": 42,
        "hub_token": SECRET,
        "push_to_hub_token": None,
        "hub_model_id": "alice/medmcqa-sft",
    }
    if phase == "grpo":
        training.update(num_generations=4, max_completion_length=256, beta=0.0, learning_rate=5e-6)
    return {
        "phase": phase,
        "base": base,
        "adapter_path": "/tmp/out/adapter",
        "config": {
            "MedMCQAScriptArguments": {
                "dataset_name": "openlifescienceai/medmcqa",
                "hf_token_env": "HF_TOKEN",
                "reward_funcs": ["accuracy_reward"] if phase == "grpo" else None,
            },
            "MedSFTConfig" if phase == "sft" else "MedGRPOConfig": training,
            "ModelConfig": {"use_peft": True, "lora_r": 16, "lora_alpha": 32, "lora_target_modules": ["q_proj"]},
            "global_step": 800,
            "world_size": 1,
        },
        "split_manifest_hash": "abc123",
        "project_version": "0.1.0",
        "project_commit": "deadbeef",
        "date": "2026-01-01T00:00:00+00:00",
        **extra,
    }


MANIFEST = {
    "seed": 42,
    "sizes": {"sft": 1000, "grpo": 500, "eval": 200},
    "dataset_fingerprint": "f00d",
    "source": "openlifescienceai/medmcqa",
    "splits": {
        "sft": {"size": 1000, "row_ids": ["a"], "content_hashes": ["h1"]},
        "grpo": {"size": 500, "row_ids": ["b"], "content_hashes": ["h2"]},
        "eval": {"size": 200, "row_ids": ["c"], "content_hashes": ["h3"]},
    },
    "skipped": {"missing_option": 3},
}


def front(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_a_mixture_card_names_each_tasks_dataset_and_share():
    mixture = [
        {"task": "medqa", "weight": 2.0, "source": "GBaker/MedQA-USMLE-4-options", "sizes": {"sft": 4}},
        {"task": "mine", "weight": 1.0, "source": "data/mine.jsonl", "sizes": {"sft": 2}},
    ]
    card = render_model_card(lineage(), manifest={"seed": 1, "mixture": mixture, "splits": {"sft": {"size": 6}}})
    assert front(card)["datasets"] == ["GBaker/MedQA-USMLE-4-options"], "a local file is no Hub dataset"
    assert "| task medqa (weight 2) | GBaker/MedQA-USMLE-4-options: {'sft': 4} |" in card
    assert "| source |" not in card


def test_card_has_front_matter_and_every_section():
    card = render_model_card(lineage(), manifest=MANIFEST, repo_id="alice/medmcqa-sft")
    meta = front(card)
    assert meta["base_model"] == "Qwen/Qwen3-0.6B"
    assert meta["library_name"] == "transformers"
    assert meta["datasets"] == ["openlifescienceai/medmcqa"]
    assert {"sft", "trl", "peft", "lora", "medmcqa"} <= set(meta["tags"])
    assert meta["pipeline_tag"] == "text-generation"
    for section in ("# alice/medmcqa-sft", "## Evaluation", "## Data and split", "## Hyperparameters", "## Lineage"):
        assert section in card
    for row in ("| learning_rate | 0.0002 |", "| lora_r | 16 |", "| max_steps | 800 |", "| global_step | 800 |"):
        assert row in card
    assert "num_train_epochs" not in card, "epochs do not matter when max_steps is set"
    assert "| manifest hash | abc123 |" in card and "| sft rows | 1000 |" in card and "missing_option" in card
    assert "| project commit | deadbeef |" in card and "split_manifest.json" in card
    assert f"{EVAL_START}\n{NO_EVAL_TEXT}\n{EVAL_END}" in card


def test_card_never_holds_a_token():
    card = render_model_card(lineage(), manifest=MANIFEST, secret=SECRET)
    assert SECRET not in card
    assert "hf_token_env" not in card or "HF_TOKEN" in card
    assert model_card.redact_secrets({"hub_token": SECRET, "hf_token_env": "HF_TOKEN", "x": [{"api_token": 1}]}) == {
        "hub_token": "<redacted>",
        "hf_token_env": "HF_TOKEN",
        "x": [{"api_token": "<redacted>"}],
    }
    leaked = render_model_card({**lineage(), "date": f"note {SECRET}"}, secret=SECRET)
    assert SECRET not in leaked


def test_grpo_card_from_a_local_sft_folder_shows_the_parent_and_no_local_base_model(tmp_path):
    sft = tmp_path / "sft" / "merged"
    sft.mkdir(parents=True)
    (sft / "lineage.json").write_text(json.dumps(lineage()))
    out = tmp_path / "grpo"
    (out / "merged").mkdir(parents=True)
    (out / "merged" / "lineage.json").write_text(json.dumps(lineage("grpo", base=str(sft))))
    (out / "split_manifest.json").write_text(json.dumps(MANIFEST))
    card = card_for_output_dir(out, "alice/medmcqa-grpo")
    assert "base_model" not in front(card)
    assert "| parent phase | sft from Qwen/Qwen3-0.6B |" in card
    assert "| num_generations | 4 |" in card and "reward_funcs" in card
    assert "GRPO" in card and "trained on the `grpo` split only" in card


def test_grpo_card_from_a_hub_sft_model_names_it_as_base_model():
    card = render_model_card(lineage("grpo", base="alice/medmcqa-sft"))
    assert front(card)["base_model"] == "alice/medmcqa-sft"
    assert "[alice/medmcqa-sft](https://huggingface.co/alice/medmcqa-sft)" in card


def test_card_for_output_dir_without_lineage_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="lineage.json"):
        card_for_output_dir(tmp_path)


def test_replacing_the_eval_section_keeps_everything_else():
    card = render_model_card(lineage(), manifest=MANIFEST)
    once = replace_eval_section(card, EVAL_TABLE)
    twice = replace_eval_section(once, "| model | accuracy |\n|---|---|\n| **grpo** | 43.0% |")
    assert twice.count(EVAL_START) == 1 and "43.0%" in twice and "41.0%" not in twice
    assert twice.replace("43.0%", "41.0%") == once
    assert once.split(EVAL_START)[0] == card.split(EVAL_START)[0]
    bare = replace_eval_section("# some card\n", EVAL_TABLE)
    assert bare.startswith("# some card\n") and f"## Evaluation\n\n{EVAL_START}\n{EVAL_TABLE}\n{EVAL_END}" in bare


def test_update_local_folder_renders_from_lineage_then_replaces(tmp_path):
    folder = tmp_path / "merged"
    folder.mkdir()
    (folder / "lineage.json").write_text(json.dumps(lineage()))
    (tmp_path / "split_manifest.json").write_text(json.dumps(MANIFEST))
    path = update_model_card_with_eval(str(folder), EVAL_TABLE)
    card = Path(path).read_text()
    assert path == str(folder / "README.md") and EVAL_TABLE in card and "| manifest hash | abc123 |" in card
    update_model_card_with_eval(folder, EVAL_TABLE.replace("41.0", "50.0"))
    card = (folder / "README.md").read_text()
    assert "50.0%" in card and "41.0%" not in card and card.count(EVAL_START) == 1


def test_update_on_the_hub_downloads_replaces_and_uploads_one_file(tmp_path, monkeypatch):
    existing = tmp_path / "README.md"
    existing.write_text(render_model_card(lineage(), repo_id="alice/medmcqa-sft"))
    downloads, uploads = [], []

    def hf_hub_download(repo_id, filename, *, token=None):
        downloads.append((repo_id, filename, token))
        return str(existing)

    def upload_file(api, *, path_or_fileobj, path_in_repo, repo_id, commit_message=None):
        uploads.append(
            (api.token, {"path_or_fileobj": path_or_fileobj, "path_in_repo": path_in_repo, "repo_id": repo_id})
        )

    patch_bound(monkeypatch, huggingface_hub, "hf_hub_download", hf_hub_download)
    patch_bound(monkeypatch, HfApi, "upload_file", upload_file)
    where = update_model_card_with_eval("alice/medmcqa-sft", EVAL_TABLE, token=SECRET)
    assert where == "alice/medmcqa-sft/README.md"
    assert downloads == [("alice/medmcqa-sft", "README.md", SECRET)]
    ((token, upload),) = uploads
    assert token == SECRET and upload["repo_id"] == "alice/medmcqa-sft" and upload["path_in_repo"] == "README.md"
    text = upload["path_or_fileobj"].decode()
    assert EVAL_TABLE in text and "## Hyperparameters" in text and NO_EVAL_TEXT not in text


def test_update_on_the_hub_without_a_card_renders_one_from_lineage(tmp_path, monkeypatch):
    from huggingface_hub.errors import EntryNotFoundError

    (tmp_path / "lineage.json").write_text(json.dumps(lineage()))
    uploads = []

    def hf_hub_download(repo_id, filename, *, token=None):
        if filename != "lineage.json":
            raise EntryNotFoundError(filename)
        return str(tmp_path / filename)

    def upload_file(api, *, path_or_fileobj, path_in_repo, repo_id, commit_message=None):
        uploads.append({"path_or_fileobj": path_or_fileobj, "path_in_repo": path_in_repo, "repo_id": repo_id})

    patch_bound(monkeypatch, huggingface_hub, "hf_hub_download", hf_hub_download)
    patch_bound(monkeypatch, HfApi, "upload_file", upload_file)
    update_model_card_with_eval("alice/medmcqa-sft", EVAL_TABLE)
    text = uploads[0]["path_or_fileobj"].decode()
    assert front(text)["base_model"] == "Qwen/Qwen3-0.6B" and EVAL_TABLE in text


def interval(value: float, count: int, total: int = 200) -> dict:
    return {"value": value, "count": count, "total": total, "ci_low": value - 0.05, "ci_high": value + 0.05}


def fake_results(sources: dict[str, str] | None = None) -> dict:
    """The parts of an eval_results.json that the card's eval section reads."""
    sources = sources or {"base": "Qwen/Qwen3-0.6B", "sft": "alice/medmcqa-sft", "grpo": "alice/medmcqa-grpo"}
    from fine_tune.evaluate.report import HEADLINE_METRICS, LENIENT_METRICS

    models = {}
    for index, (label, source) in enumerate(sources.items()):
        rate = 0.3 + 0.05 * index
        intervals = {metric: interval(rate, int(rate * 200)) for metric in (*HEADLINE_METRICS, *LENIENT_METRICS)}
        models[label] = {"source": source, "status": "ok", "intervals": intervals}
    return {
        "run_name": "medmcqa-split",
        "dataset": {"rows": 200, "description": "the eval split", "source": "openlifescienceai/medmcqa"},
        "models": models,
    }


def test_eval_results_update_the_cards_of_scored_models_but_not_the_base(tmp_path):
    folders = {}
    for label in ("sft", "grpo"):
        folders[label] = tmp_path / label
        folders[label].mkdir()
        (folders[label] / "lineage.json").write_text(json.dumps(lineage(label)))
    results = fake_results({"base": "Qwen/Qwen3-0.6B", **{k: str(v) for k, v in folders.items()}})
    results["models"]["broken"] = {"source": "x/y", "status": "failed"}
    written = update_cards_from_results(results)
    assert written == [str(folders["sft"] / "README.md"), str(folders["grpo"] / "README.md")]
    card = (folders["grpo"] / "README.md").read_text()
    assert (
        "This model is **grpo**." in card
        and "| **base** |" in card
        and "| **grpo** | 40.0% [35.0, 45.0] 80/200" in card
    )
    assert "### Metrics" in card and "medmcqa-split" in card


def test_push_to_hub_uploads_the_card_and_split_manifest(tmp_path, monkeypatch):
    from fine_tune.hub import publish

    out = tmp_path / "out"
    for sub in ("merged", "adapter"):
        (out / sub).mkdir(parents=True)
        (out / sub / "lineage.json").write_text(json.dumps(lineage()))
    (out / "split_manifest.json").write_text(json.dumps(MANIFEST))
    calls = []
    fake_hub_pushes(monkeypatch, calls)
    publish.push_to_hub(out, "alice/medmcqa-sft", token=SECRET, private=True)
    assert [c[0] for c in calls] == ["create_repo", "upload_folder", "upload_folder", "create_commit"]
    commit = calls[-1][1]
    files = {op.path_in_repo: op.path_or_fileobj for op in commit["operations"]}
    assert set(files) == {"README.md", "split_manifest.json"} and commit["repo_id"] == "alice/medmcqa-sft"
    card = files["README.md"].decode()
    assert front(card)["base_model"] == "Qwen/Qwen3-0.6B" and "# alice/medmcqa-sft" in card
    assert SECRET not in card
    assert Path(files["split_manifest.json"]) == out / "split_manifest.json"


def test_card_keys_are_keys_of_the_recipe_schema():
    """The card's hyperparameter rows name fields the recipes really have (a removed option would silently vanish)."""
    import dataclasses

    from trl import ModelConfig

    from fine_tune.recipes.arguments import GRPOScriptArguments
    from fine_tune.recipes.trainer_configs import MedGRPOConfig, MedSFTConfig

    def fields(*types):
        return {f.name for cls in types for f in dataclasses.fields(cls)}

    assert set(model_card.TRAINING_KEYS) <= fields(MedSFTConfig, MedGRPOConfig)
    assert set(model_card.MODEL_KEYS) <= fields(ModelConfig)
    assert set(model_card.SCRIPT_KEYS) <= fields(GRPOScriptArguments)
    assert "activation_checkpointing" in model_card.TRAINING_KEYS
    assert "gradient_checkpointing" not in model_card.TRAINING_KEYS, "replaced by activation_checkpointing"
