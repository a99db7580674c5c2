import subprocess
import sys
import time
from pathlib import Path

import pytest

from fine_tune.constants import TRACKIO_PROJECT
from fine_tune.recipes.loader import parse_recipe
from fine_tune.recipes.trainer_configs import MedGRPOConfig, MedSFTConfig
from fine_tune.task.rewards import get_reward_funcs

REPO = Path(__file__).resolve().parent.parent


def test_sft_recipe_has_the_upstream_hyperparameters_and_cli_overrides():
    script, train, model = parse_recipe("sft", ["--config", str(REPO / "configs/sft.yaml"), "--max_steps", "10"])
    assert train.max_steps == 10
    assert (model.lora_r, model.lora_alpha, model.lora_dropout) == (16, 32, 0.05)
    assert model.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (train.learning_rate, train.warmup_steps, train.lr_scheduler_type.value) == (2e-4, 0.03, "cosine")
    assert (train.per_device_train_batch_size, train.gradient_accumulation_steps, train.max_length) == (4, 4, 1024)
    assert not train.activation_checkpointing, "off: a T4 fits the worst-case micro-batch without it"
    assert train.report_to == ["trackio"] and train.project == TRACKIO_PROJECT
    assert script.split_sizes == {"sft": 1000, "grpo": 500, "eval": 200} and script.split_seed == 42
    assert not train.bf16 and not train.fp16, "precision auto on a CPU is fp32"


def test_grpo_recipe_is_valid_for_this_trl():
    script, train, model = parse_recipe("grpo", ["--config", str(REPO / "configs/grpo.yaml")])
    assert (train.max_steps, train.learning_rate, train.num_generations, train.max_completion_length) == (
        400,
        5e-6,
        4,
        256,
    )
    assert train.generation_batch_size % train.num_generations == 0
    assert train.chat_template_kwargs == {"enable_thinking": False}
    assert len(get_reward_funcs(script.reward_funcs)) == len(train.reward_weights) == 3
    assert script.require_sft_lineage and train.reward_guard_action == "stop"
    assert model.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_non_thinking_mode_cannot_be_dropped_by_an_override():
    _, train, _ = parse_recipe(
        "grpo",
        ["--output_dir", "/tmp/x", "--chat_template_kwargs", '{"foo": 1}', "--num_generations", "2"],
    )
    assert train.chat_template_kwargs == {"enable_thinking": False, "foo": 1}


def test_eval_recipes_parse():

    (demo,) = parse_recipe("eval", ["--config", str(REPO / "configs/demo/eval.yaml")])
    assert (
        set(demo.models) == {"base", "sft", "grpo"} and demo.split_manifest == "demo_artifacts/sft/split_manifest.json"
    )
    (real,) = parse_recipe("eval", ["--config", str(REPO / "configs/eval.yaml"), "--limit", "20"])
    assert real.models["base"] == "Qwen/Qwen3-0.6B" and real.limit == 20 and real.eval_size == 200


@pytest.mark.parametrize("name", ["sft", "grpo"])
def test_demo_recipes_parse(name):
    path = REPO / "configs" / "demo" / f"{name}.yaml"
    script, train, _ = parse_recipe(name, ["--config", str(path)])
    assert script.dataset_name.startswith("demo_artifacts/") and not train.bf16


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        MedSFTConfig(output_dir="/tmp/x", precision="fp8")
    with pytest.raises(ValueError, match="reward_guard_action"):
        MedGRPOConfig(output_dir="/tmp/x", reward_guard_action="ignore", num_generations=2)
    with pytest.raises(ValueError, match="expected one of"):
        MedGRPOConfig(output_dir="/tmp/x", vllm="maybe", num_generations=2)
    assert MedGRPOConfig(output_dir="/tmp/x", vllm="server", num_generations=2).vllm == "server"


def test_real_recipe_offline_fails_fast_with_the_fix():
    """`--config configs/sft.yaml --max_steps 10` with no Hub: a clear message within seconds, no traceback."""
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "scripts/train_medmcqa_sft.py", "--config", "configs/sft.yaml", "--max_steps", "10"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": "/tmp"},
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "local path" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - start < 60
