import json
from pathlib import Path

import pytest

from fine_tune.hub.jobs.memory import (
    GIB,
    KNOWN_MODEL_CONFIGS,
    MemoryPlan,
    ModelShape,
    fits,
    plan_memory,
    read_model_config,
    smallest_fitting_flavor,
)
from fine_tune.recipes.loader import load_recipe, recipe_values

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
BASE_RECIPES = ("mistral-7b-v0.3", "medgemma-4b", "llama3-meerkat-8b", "qwen3-4b", "qwen3-8b")
SFT = {
    "precision": "bf16",
    "use_peft": True,
    "lora_r": 16,
    "lora_dropout": 0.05,
    "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "per_device_train_batch_size": 4,
    "max_length": 1024,
}


@pytest.mark.parametrize(
    ("base", "published_billions"),
    [("Qwen/Qwen3-4B", 4.02), ("Qwen/Qwen3-8B", 8.19), ("mistralai/Mistral-7B-Instruct-v0.3", 7.25),
     ("dmis-lab/llama-3-meerkat-8b-v1.0", 8.03), ("google/medgemma-4b-it", 4.3)],
)  # fmt: skip
def test_parameter_count_from_the_shape_matches_the_published_size(base, published_billions):
    assert ModelShape.from_config(KNOWN_MODEL_CONFIGS[base]).params / 1e9 == pytest.approx(
        published_billions, rel=0.01
    )


def test_parameter_count_matches_a_real_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    assert ModelShape.from_config(config).params == model.num_parameters() - norms


def test_quantisation_and_checkpointing_shrink_their_terms():
    config = KNOWN_MODEL_CONFIGS["dmis-lab/llama-3-meerkat-8b-v1.0"]
    full = plan_memory(SFT, config, "sft")
    four = plan_memory({**SFT, "load_in_4bit": True}, config, "sft")
    nested = plan_memory({**SFT, "load_in_4bit": True, "use_bnb_nested_quant": True}, config, "sft")
    assert full.parts["weights"] == pytest.approx(8.03e9 * 2, rel=0.01)
    # 4-bit linears (~6.98B params at ~0.56 B) + fp32 embeddings and lm_head (2 x 525M x 4 B) after k-bit prep
    assert four.parts["weights"] / GIB == pytest.approx((6.98e9 * 0.5625 + 1.05e9 * 4) / GIB, rel=0.01)
    assert nested.parts["weights"] < four.parts["weights"]
    checkpointed = plan_memory({**SFT, "activation_checkpointing": True}, config, "sft")
    assert checkpointed.parts["activations"] < full.parts["activations"] / 5
    more_rank = plan_memory({**SFT, "lora_r": 64}, config, "sft")
    assert more_rank.parts["trainable_and_optimizer"] == 4 * full.parts["trainable_and_optimizer"]
    longer = plan_memory({**SFT, "max_length": 2048}, config, "sft")
    assert longer.parts["logits"] == 2 * full.parts["logits"]


def test_generation_phases_count_the_kv_cache():
    config = KNOWN_MODEL_CONFIGS["Qwen/Qwen3-8B"]
    small = plan_memory({"batch_size": 8, "max_new_tokens": 256, "precision": "bf16"}, config, "eval")
    large = plan_memory({"batch_size": 64, "max_new_tokens": 256, "precision": "bf16"}, config, "eval")
    # 2 (k, v) x 36 layers x 8 heads x 128 x 2 bytes = 144 KiB per token
    assert small.parts["kv_cache"] == 8 * (384 + 256) * 2 * 36 * 8 * 128 * 2
    assert large.parts["kv_cache"] == 8 * small.parts["kv_cache"]
    grpo = {**SFT, "load_in_4bit": True, "per_device_train_batch_size": 2, "generation_batch_size": 512}
    plan = plan_memory(grpo, config, "grpo")
    assert "kv_cache" in plan.parts and "generation" in plan.notes[-1]


def test_fits_and_flavor_choice():
    plan = MemoryPlan("sft", {"weights": 20 * GIB})
    assert not fits(plan, 15.0) and not fits(plan, 20.5) and fits(plan, 22.5)
    assert smallest_fitting_flavor(plan) == "l4x1"
    flavors = {"small": 16.0, "big": 48.0, "huge": 80.0}
    assert smallest_fitting_flavor(plan, flavors, {"small": 0.4, "big": 1.8, "huge": 1.5}) == "huge"
    assert smallest_fitting_flavor(MemoryPlan("sft", {"weights": 100 * GIB}), flavors) is None


def test_unknown_lora_target_and_config_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not decoder linears"):
        plan_memory({**SFT, "lora_target_modules": ["fc1"]}, KNOWN_MODEL_CONFIGS["Qwen/Qwen3-4B"], "sft")
    with pytest.raises(ValueError, match="lacks hidden_size"):
        ModelShape.from_config({"model_type": "bert"})
    from fine_tune.errors import ModelSourceError

    with pytest.raises(ModelSourceError, match="pass --model_config"):
        read_model_config(tmp_path / "outputs" / "sft" / "merged")


@pytest.mark.parametrize("base", BASE_RECIPES)
def test_each_base_recipe_loads_and_has_a_flavor_that_fits_each_phase(base, monkeypatch):
    """The dry run of every base recipe: parsed by the one recipe loader, planned, and a flavor fits."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    values = {phase: recipe_values(load_recipe(phase, CONFIGS / base / f"{phase}.yaml")) for phase in ("sft", "grpo")}
    eval_values = recipe_values(load_recipe("eval", CONFIGS / base / "eval.yaml"))
    hub_id = eval_values["models"]["base"]
    assert values["sft"]["model_name_or_path"] == hub_id and values["sft"]["load_in_4bit"]
    assert values["grpo"]["model_name_or_path"] == f"{values['sft']['output_dir']}/merged"
    config = read_model_config(hub_id)
    for phase, phase_values in (*values.items(), ("eval", eval_values)):
        plan = plan_memory(phase_values, config, phase)
        flavor = smallest_fitting_flavor(plan)
        assert flavor is not None, plan.describe()
        assert plan.peak_gib > 3, "a 4-8B model needs several GiB in every phase"
