"""A phase whose input model is missing says which phase writes it, and writes nothing before that check."""

import time
from pathlib import Path

import pytest

from fine_tune.errors import ModelSourceError
from fine_tune.recipes.loader import load_recipe

REPO = Path(__file__).resolve().parent.parent


def grpo_recipe(tmp_path, model: str, data: Path):
    return load_recipe(
        "grpo",
        REPO / "configs" / "demo" / "grpo.yaml",
        ["--model_name_or_path", model, "--dataset_name", str(data), "--output_dir", str(tmp_path / "grpo")],
    )


def test_grpo_before_sft_names_the_sft_phase_and_writes_nothing(monkeypatch, tmp_path, synthetic_jsonl):
    from fine_tune.train.grpo import run_grpo

    (tmp_path / "outputs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSourceError) as raised:
        run_grpo(*grpo_recipe(tmp_path, "outputs/medmcqa-sft/merged", synthetic_jsonl))
    message = str(raised.value)
    assert message.startswith("GRPO's starting model not found: outputs/medmcqa-sft/merged")
    assert "SFT phase (scripts/train_medmcqa_sft.py)" in message and "exited 3" in message
    assert "handed nothing on" in message
    assert not (tmp_path / "grpo").exists()  # no stray split_manifest.json


def test_grpo_from_a_hub_sft_model_without_network_says_the_hub_is_unreachable(monkeypatch, tmp_path, synthetic_jsonl):
    from fine_tune.hub_access import OFFLINE_ENV_VARS
    from fine_tune.train.grpo import run_grpo

    for name in OFFLINE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(ModelSourceError) as raised:
        run_grpo(*grpo_recipe(tmp_path, "USER/medmcqa-sft", synthetic_jsonl))
    assert time.monotonic() - started < 5
    assert "USER/medmcqa-sft" in str(raised.value) and "unreachable" in str(raised.value)
    assert "lineage.json" not in str(raised.value)


def test_the_eval_names_the_phase_that_writes_a_missing_model(monkeypatch, tmp_path):
    from fine_tune.evaluate.scored_models import check_source

    (tmp_path / "outputs" / "medmcqa-sft").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSourceError, match="GRPO phase .* handed nothing on"):
        check_source("outputs/medmcqa-grpo/merged", "grpo")
    with pytest.raises(ModelSourceError, match=r"nearest existing: outputs/medmcqa-sft\)"):
        check_source("outputs/medmcqa-sfft", "base")
