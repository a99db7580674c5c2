"""SFT -> GRPO -> eval through the three entry scripts on the tiny stand-in of each architecture (a few steps each)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fine_tune.models.tiny import ARCHITECTURES

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(*args):
    result = subprocess.run(
        [sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_three_phases_on_each_architecture(arch, tiny_arch_dirs, synthetic_jsonl, tmp_path):
    model = tiny_arch_dirs[arch]
    data = ["--dataset_name", synthetic_jsonl]
    run("scripts/train_medmcqa_sft.py", "--config", "configs/demo/sft.yaml", *data, "--model_name_or_path", model,
        "--output_dir", tmp_path / "sft", "--max_steps", 2, "--save_strategy", "no", "--dev_size", 0)  # fmt: skip
    run("scripts/train_medmcqa_grpo.py", "--config", "configs/demo/grpo.yaml", *data,
        "--model_name_or_path", tmp_path / "sft" / "merged", "--output_dir", tmp_path / "grpo", "--max_steps", 2,
        "--dev_size", 0, "--per_device_train_batch_size", 4, "--num_generations", 4, "--max_completion_length", 16,
        "--reward_guard_action", "warn")  # fmt: skip
    models = f"base={model},sft={tmp_path / 'sft' / 'merged'},grpo={tmp_path / 'grpo' / 'merged'}"
    run("scripts/eval_medmcqa.py", "--config", "configs/demo/eval.yaml", *data, "--models", models, "--limit", 8,
        "--max_new_tokens", 16, "--bootstrap_resamples", 100, "--split_manifest",
        tmp_path / "sft" / "split_manifest.json", "--output_dir", tmp_path / "eval")  # fmt: skip
    results = json.loads((tmp_path / "eval" / "demo" / "eval_results.json").read_text())
    assert {label: results["models"][label]["status"] for label in ("base", "sft", "grpo")} == dict.fromkeys(
        ("base", "sft", "grpo"), "ok"
    )
    grpo_lineage = json.loads((tmp_path / "grpo" / "merged" / "lineage.json").read_text())
    assert grpo_lineage["phase"] == "grpo" and grpo_lineage["base"] == str(tmp_path / "sft" / "merged")
    config = json.loads((tmp_path / "grpo" / "merged" / "config.json").read_text())
    assert config["model_type"] == json.loads((model / "config.json").read_text())["model_type"]
