"""The memory plan: each term against a hand computation for a known shape, the fit, the flavor choice."""

import json
from pathlib import Path

import pytest

from fine_tune.hub.jobs.hardware import JOBS_FLAVORS
from fine_tune.hub.jobs.memory import (
    GIB,
    ModelShape,
    cheapest_fitting_flavor,
    fit_on_flavor,
    fits,
    plan_memory,
    plan_on_flavor,
    planned_precision,
)
from fine_tune.models.known_shapes import KNOWN_MODEL_CONFIGS, read_model_config
from fine_tune.recipes.loader import load_recipe, recipe_values

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
BASE_RECIPES = ("mistral-7b-v0.3", "medgemma-4b", "llama3-meerkat-8b", "qwen3-4b", "qwen3-8b")
QWEN3_8B = KNOWN_MODEL_CONFIGS["Qwen/Qwen3-8B"]
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# configs/qwen3-8b/sft.yaml's memory-relevant keys, with no task (rows up to max_length)
QLORA = {
    "use_peft": True,
    "load_in_4bit": True,
    "use_bnb_nested_quant": True,
    "lora_r": 16,
    "lora_dropout": 0.05,
    "lora_target_modules": ALL_LINEAR,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 4,
    "max_length": 1024,
    "activation_checkpointing": True,
}
# Qwen3-8B by hand: h 4096, i 12288, 36 layers, 32 x 128 query heads, 8 x 128 KV heads, 151,936 tokens, untied
H, INTER, L, Q, KV, V = 4096, 12288, 36, 32 * 128, 8 * 128, 151936
LINEARS = L * (H * Q + 2 * H * KV + Q * H + 3 * H * INTER)  # q, k, v, o, gate, up, down
LORA = L * 16 * ((H + Q) + 2 * (H + KV) + (Q + H) + 2 * (H + INTER) + (INTER + H))


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
    shape = ModelShape.from_config(config)
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    assert shape.params == model.num_parameters() - norms and shape.norm_params == norms


def test_weights_are_nf4_linears_plus_fp32_embeddings_after_kbit_preparation():
    """bitsandbytes quantises the decoder linears (0.5 B + nested absmax); k-bit preparation casts the embedding,
    the untied LM head and the norms to fp32."""
    plan = plan_memory(QLORA, QWEN3_8B, "sft", precision="fp16")
    nested = 0.5 + 1 / 64 + 4 / (64 * 256)
    norms = L * (2 * H + 2 * 128) + H
    assert plan.parts["weights"] == int(LINEARS * nested + (2 * V * H + norms) * 4)
    plain = plan_memory({**QLORA, "use_bnb_nested_quant": False}, QWEN3_8B, "sft", precision="fp16")
    assert plain.parts["weights"] == int(LINEARS * (0.5 + 4 / 64) + (2 * V * H + norms) * 4)
    full = plan_memory({**QLORA, "load_in_4bit": False}, QWEN3_8B, "sft", precision="bf16")
    assert full.parts["weights"] == (LINEARS + 2 * V * H) * 2


def test_medgemma_vision_tower_linears_are_quantised():
    """bitsandbytes quantises every nn.Linear but the LM head: SigLIP's 27 layers of q, k, v, out, fc1, fc2 too."""
    config = KNOWN_MODEL_CONFIGS["google/medgemma-4b-it"]
    shape = ModelShape.from_config(config)
    siglip_linears = 27 * (4 * 1152 * 1152 + 2 * 1152 * 4304)
    siglip_rest = (3 * 14 * 14 + (896 // 14) ** 2) * 1152  # patch and position embeddings
    assert shape.extra_params == siglip_linears + siglip_rest
    nested = 0.5 + 1 / 64 + 4 / (64 * 256)
    plan = plan_memory(QLORA, config, "sft", precision="bf16")
    rest = 262208 * 2560 + shape.norm_params + siglip_rest  # tied embedding, norms, vision embeddings: fp32
    assert plan.parts["weights"] == int((shape.backbone_linear_params + siglip_linears) * nested + rest * 4)


def test_adapters_are_fp32_weight_grad_and_adam_moments():
    plan = plan_memory(QLORA, QWEN3_8B, "sft", precision="fp16")
    assert plan.parts["adapters"] == LORA * 16


def test_checkpoints_layer_and_backward_terms_by_hand():
    """Checkpointed inputs are fp32 (the k-bit residual stream). The recomputed layer's saved tensors per token, as
    saved_tensors_hooks lists them: per LoRA target its input's dropout mask (bool on CUDA) and bf16 cast plus
    lora_B's input; the fp32 post-attention residual; q/k norm inputs and the MLP's SiLU input, output and up output
    in fp32 (bnb's Linear4bit answers in its input's dtype); SDPA's q, k, v, out at w, k and v repeated."""
    tokens = 4 * 1024
    plan = plan_memory({**QLORA, "task": None}, QWEN3_8B, "sft", precision="fp16")
    terms = {**plan.parts, **plan.off_peak}
    assert terms["checkpoints"] == L * tokens * H * 4
    lora = (5 * H + Q + INTER) * (1 + 2) + 7 * 16 * 2
    per_token = lora + 4 * H + 4 * (Q + KV) + 2 * 4 * Q + 3 * 4 * INTER
    assert per_token == 327_904
    assert terms["layer"] == tokens * per_token + LORA // L * 2
    assert terms["backward"] == tokens * (4 * H + 2 * 4 * INTER) + H * INTER * 2
    no_dropout = plan_memory({**QLORA, "task": None, "lora_dropout": 0}, QWEN3_8B, "sft", precision="fp16")
    assert {**no_dropout.parts, **no_dropout.off_peak}["layer"] == terms["layer"] - tokens * (5 * H + Q + INTER)
    on_cpu = plan_memory({**QLORA, "task": None}, QWEN3_8B, "sft", precision="fp16", device="cpu")
    assert {**on_cpu.parts, **on_cpu.off_peak}["layer"] == terms["layer"] + tokens * (5 * H + Q + INTER) * 3
    unchecked = plan_memory({**QLORA, "task": None, "activation_checkpointing": False}, QWEN3_8B, "sft")
    assert unchecked.parts["layer"] == L * (terms["layer"] + tokens * H * 4) and "checkpoints" not in unchecked.parts


def test_the_lm_head_is_fused_never_tokens_by_vocabulary():
    """TRL's fused LM head holds a 4096 x 32768 tile, a weight slice and the hidden states: never t x V logits."""
    tokens = 4 * 1024
    plan = plan_memory({**QLORA, "task": None}, QWEN3_8B, "sft", precision="fp16")
    head = {**plan.parts, **plan.off_peak}["lm_head"]
    assert head == 4096 * 32768 * 2 + 32768 * H * 2 + 2 * tokens * H * 4 + tokens * H * 4
    assert head < tokens * V * (2 + 4 + 4) / 8, "the old plan charged fp16 logits, an fp32 copy and its gradient"
    # the first-principles estimate: ~13 GiB at 4 x 1024, ~10 GiB at 2 x 512
    assert 12.0 < plan.peak_gib < 13.5
    small = plan_memory({**QLORA, "task": None, "per_device_train_batch_size": 2, "max_length": 512}, QWEN3_8B, "sft")
    assert 9.0 < small.peak_gib < 10.5


def test_the_task_length_caps_the_rows():
    """TRL pads a batch to its longest row: MedMCQA's longest measured SFT example (496 Qwen3 tokens, +20% for other
    tokenizers) is the length, not max_length 1024."""
    plan = plan_memory({**QLORA, "task": "medmcqa"}, QWEN3_8B, "sft", precision="fp16")
    assert plan.parts["checkpoints"] == L * 4 * 596 * H * 4
    assert "596" in plan.notes[0]
    capped = plan_memory({**QLORA, "task": "medmcqa", "max_length": 256}, QWEN3_8B, "sft", precision="fp16")
    assert capped.parts["checkpoints"] == L * 4 * 256 * H * 4


def test_generation_counts_the_kv_cache_and_no_reference_copy():
    eval_values = {"batch_size": 8, "max_new_tokens": 256, "task": "medmcqa"}
    small = plan_memory(eval_values, QWEN3_8B, "eval", precision="bf16")
    large = plan_memory({**eval_values, "batch_size": 64}, QWEN3_8B, "eval", precision="bf16")
    prompt = 556  # 463 x 1.2
    assert small.parts["kv_cache"] == 8 * (prompt + 256) * 2 * L * KV * 2
    assert large.parts["kv_cache"] == 8 * small.parts["kv_cache"]
    assert small.parts["weights"] == (LINEARS + 2 * V * H) * 2, "eval loads the merged model unquantised"
    grpo = {**QLORA, "per_device_train_batch_size": 2, "generation_batch_size": 512, "max_completion_length": 256}
    plan = plan_memory(grpo, QWEN3_8B, "grpo", precision="bf16")
    assert "generation" in plan.parts and "generation" in plan.notes[-1]
    with_beta = plan_memory({**grpo, "beta": 0.04}, QWEN3_8B, "grpo", precision="bf16")
    assert with_beta.peak_bytes == plan.peak_bytes, "peft: the reference is the base with the adapter disabled"


def test_precision_follows_the_flavor_and_gemma_never_runs_fp16():
    t4, l4 = JOBS_FLAVORS["t4-small"].device, JOBS_FLAVORS["l4x1"].device
    gemma = KNOWN_MODEL_CONFIGS["google/medgemma-4b-it"]
    assert planned_precision({"precision": "auto"}, QWEN3_8B, t4) == "fp16"
    assert planned_precision({"precision": "auto"}, QWEN3_8B, l4) == "bf16"
    assert planned_precision({"precision": "auto"}, gemma, t4) == "fp32"
    assert planned_precision({"precision": "auto"}, gemma, l4) == "bf16"
    on_t4 = plan_on_flavor({"batch_size": 16, "task": "medmcqa"}, gemma, "eval", "t4-small")
    on_l4 = plan_on_flavor({"batch_size": 16, "task": "medmcqa"}, gemma, "eval", "l4x1")
    assert on_t4.precision == "fp32" and on_t4.parts["weights"] == 2 * on_l4.parts["weights"]


def test_usable_memory_is_what_torch_reports():
    assert JOBS_FLAVORS["t4-small"].device.usable_memory_gib == 14.74
    for flavor in JOBS_FLAVORS.values():
        assert flavor.device.usable_memory_gib < flavor.device.memory_bytes / GIB


def test_fit_keeps_the_effective_batch_then_caps_the_length():
    wide = {**QLORA, "task": "medmcqa", "per_device_train_batch_size": 16, "gradient_accumulation_steps": 1}
    assert not fits(plan_on_flavor(wide, QWEN3_8B, "sft", "t4-small"), 14.74)
    fitted = fit_on_flavor(wide, QWEN3_8B, "sft", "t4-small")
    assert fitted.overrides == {"per_device_train_batch_size": 8, "gradient_accumulation_steps": 2}
    assert fits(fitted.plan, 14.74)
    odd = fit_on_flavor({**wide, "per_device_train_batch_size": 12, "gradient_accumulation_steps": 2}, QWEN3_8B,
                        "sft", "t4-small")  # fmt: skip
    assert odd.overrides["per_device_train_batch_size"] * odd.overrides["gradient_accumulation_steps"] == 24
    long_rows = {**QLORA, "task": None, "max_length": 16384, "per_device_train_batch_size": 2}
    capped = fit_on_flavor(long_rows, QWEN3_8B, "sft", "t4-small")
    assert (
        capped.overrides["per_device_train_batch_size"] == 1 and capped.overrides["gradient_accumulation_steps"] == 8
    )
    assert capped.overrides["max_length"] == 1024
    assert fit_on_flavor({"batch_size": 1, "task": "medmcqa"}, QWEN3_8B, "eval", "t4-small") is None


def test_cheapest_flavor_at_the_recipes_own_batch():
    sft = {**QLORA, "task": "medmcqa"}
    assert cheapest_fitting_flavor(sft, QWEN3_8B, "sft") == "t4-small"
    assert cheapest_fitting_flavor({**sft, "per_device_train_batch_size": 16}, QWEN3_8B, "sft") == "l4x1"
    assert cheapest_fitting_flavor({"batch_size": 16, "task": "medmcqa"}, QWEN3_8B, "eval") == "l4x1"


def test_unknown_lora_target_and_config_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not decoder linears"):
        plan_memory({**QLORA, "lora_target_modules": ["fc1"]}, KNOWN_MODEL_CONFIGS["Qwen/Qwen3-4B"], "sft")
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
    config = read_model_config(hub_id)
    for phase, phase_values in (*values.items(), ("eval", eval_values)):
        flavor = cheapest_fitting_flavor(phase_values, config, phase)
        assert flavor is not None, plan_on_flavor(phase_values, config, phase, "h200").describe()
        assert plan_on_flavor(phase_values, config, phase, flavor).peak_gib > 3, "a 4-8B model needs several GiB"
