"""The cost model: Qwen3-0.6B's shape, the FLOP formula against torch's FlopCounterMode, the training cost terms."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from benchmarks.cost import QWEN3_0_6B_SHAPE, TrainingCost, flop_check
from benchmarks.models import qwen3_0_6b_config
from fine_tune.models.shape import ModelShape

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_qwen3_0_6b_shape_matches_the_model_transformers_builds():
    config = qwen3_0_6b_config()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shape = QWEN3_0_6B_SHAPE
    assert (shape.hidden_size, shape.num_layers, shape.num_heads, shape.num_kv_heads, shape.head_dim) == (
        1024,
        28,
        16,
        8,
        128,
    )
    assert shape.backbone_linear_params == 440_401_920  # Qwen3-0.6B's "0.44B non-embedding parameters"
    assert shape.lm_head_params == 155_582_464
    linear = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n)
    assert linear == shape.backbone_linear_params
    assert model.num_parameters() == shape.backbone_linear_params + shape.lm_head_params + sum(
        p.numel() for p in model.parameters() if p.dim() == 1
    )
    assert shape.lora_params(16, LORA_TARGETS) == 4_587_520


@pytest.mark.parametrize(
    "shape",
    [QWEN3_0_6B_SHAPE, ModelShape("tiny-ish", 1024, 64, 256, 4, 4, 2, 16)],
    ids=["qwen3-0.6b", "small"],
)
def test_flop_formula_matches_torch_flop_counter(shape):
    check = flop_check(shape, 128, 16, LORA_TARGETS)
    # The counter skips the first layer's input gradient (the frozen embedding needs none); nothing else differs
    first_layer_input_grad = (
        2 * 128 * sum(a * b for m, (a, b) in shape.linear_shapes().items() if m in ("q_proj", "k_proj", "v_proj"))
    )
    lora_first = (
        2 * 128 * 16 * sum(a for m, (a, _) in shape.linear_shapes().items() if m in ("q_proj", "k_proj", "v_proj"))
    )
    expected = check["formula_flops"] - first_layer_input_grad - lora_first
    assert check["counted_flops"] == pytest.approx(expected, rel=2e-3)


def test_training_cost_terms():
    cost = TrainingCost(QWEN3_0_6B_SHAPE, 16, LORA_TARGETS)
    n, lora = QWEN3_0_6B_SHAPE.backbone_linear_params, QWEN3_0_6B_SHAPE.lora_params(16, LORA_TARGETS)
    assert cost.per_token == 4 * n + 6 * lora
    assert TrainingCost(QWEN3_0_6B_SHAPE, None).per_token == 6 * n
    assert cost.per_pair == 12 * 28 * 16 * 128
    assert TrainingCost(QWEN3_0_6B_SHAPE, 16, LORA_TARGETS, recompute=True).per_token == 6 * n + 6 * lora
    assert TrainingCost(QWEN3_0_6B_SHAPE, 16, LORA_TARGETS, recompute=True).model().per_token == cost.per_token
