"""The benchmark's command line (smoke mode: keys and types only, figures are not asserted), its FLOP accounting,
the exactness of the batching levers it measures, and the accelerator switches."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from fine_tune.bench.benchmark import (
    QWEN3_0_6B_SHAPE,
    STRATEGIES,
    Lengths,
    ModelShape,
    ModelSource,
    PeakMemory,
    TrainingCost,
    batch_tokens,
    device_spec,
    flop_check,
    metered_sft_trainer_class,
    output_stem,
    padded_vs_padding_free,
    padding_efficiency,
    project_t4,
    qwen3_0_6b_config,
    schedule_micro_batches,
    sft_args,
    sft_strategy,
    sft_training_rows,
    synthetic_lengths,
)
from fine_tune.train.acceleration import (
    AccelerationError,
    checkpoint_dtype,
    parse_switch,
    resolve_use_kernels,
    resolve_use_vllm,
)

REPO = Path(__file__).resolve().parent.parent
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "targets": ("q_proj", "k_proj", "v_proj", "o_proj")}
pytestmark = pytest.mark.usefixtures("single_torch_thread")


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_smoke_run_writes_json_and_markdown_with_the_promised_keys(tmp_path):
    """`scripts/benchmark.py --smoke --json` (CI): one JSON object on stdout, the same in the output folder."""
    out = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "--smoke", "--json", "--out-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result == json.loads((tmp_path / "cpu-smoke.json").read_text())
    assert (tmp_path / "cpu-smoke.md").read_text().startswith("# Benchmark")
    assert result["device"]["type"] == "cpu" and number(result["device"]["peak_flops"])
    assert result["versions"]["torch"] and result["versions"]["trl"]
    assert "4*N" in result["flops"]["formula"]
    efficiency = result["sft"]["padding_efficiency"]
    assert set(efficiency) == set(STRATEGIES) and all(0 < v <= 1 for v in efficiency.values())
    for variant in result["sft"]["tiny_cpu"]["variants"].values():
        for key in ("real_tokens_per_s", "processed_tokens_per_s", "mfu", "peak_memory_bytes"):
            assert number(variant[key]), key
    assert number(result["eval"]["speedup_vs_sequential"])
    assert isinstance(result["eval"]["outputs_identical"], bool)
    assert number(result["grpo"]["measured_seconds_per_step"]) and 0 <= result["grpo"]["generation_share"] <= 1
    for phase in ("sft", "grpo", "eval"):
        assert result["t4_projection"][phase]["projected_t4_seconds_per_step"] > 0

    from fine_tune.hub.estimate import benchmark_figures

    figures = benchmark_figures(tmp_path)
    for phase in ("sft", "grpo", "eval"):
        figure = figures[("t4-small", phase)]
        assert figure.kind == "projected"
        assert figure.seconds == result["t4_projection"][phase]["projected_t4_seconds_per_step"]


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
    assert shape.lora_params(16, LORA["targets"]) == 4_587_520


@pytest.mark.parametrize(
    "shape",
    [QWEN3_0_6B_SHAPE, ModelShape("tiny-ish", 1024, 64, 256, 4, 4, 2, 16)],
    ids=["qwen3-0.6b", "small"],
)
def test_flop_formula_matches_torch_flop_counter(shape):
    check = flop_check(shape, 128, 16, LORA["targets"])
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
    cost = TrainingCost(QWEN3_0_6B_SHAPE, 16, LORA["targets"])
    n, lora = QWEN3_0_6B_SHAPE.backbone_linear_params, QWEN3_0_6B_SHAPE.lora_params(16, LORA["targets"])
    assert cost.per_token == 4 * n + 6 * lora
    assert TrainingCost(QWEN3_0_6B_SHAPE, None).per_token == 6 * n
    assert cost.per_pair == 12 * 28 * 16 * 128
    assert TrainingCost(QWEN3_0_6B_SHAPE, 16, LORA["targets"], recompute=True).per_token == 6 * n + 6 * lora
    assert TrainingCost(QWEN3_0_6B_SHAPE, 16, LORA["targets"], recompute=True).model().per_token == cost.per_token


def test_batch_tokens_counts_padding_and_the_packed_square():
    assert batch_tokens([2, 4, 3], [0, 1], padding_free=False) == {
        "real": 6,
        "processed": 8,
        "real_pairs": 20,
        "processed_pairs": 32,
    }
    assert batch_tokens([2, 4, 3], [0, 1], padding_free=True) == {
        "real": 6,
        "processed": 6,
        "real_pairs": 20,
        "processed_pairs": 36,
    }


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_sees_every_row_once_per_epoch(strategy):
    lengths = list(np.random.default_rng(0).integers(20, 400, 64))
    batches = schedule_micro_batches(lengths, strategy, micro_batch=4, grad_accum=4, steps=4)
    rows = [i for batch in batches for i in batch]
    assert sorted(rows) == list(range(64))
    assert len(batches) == 16


def test_batch_rebalance_keeps_each_optimizer_steps_rows():
    """The rebalanced micro-batches of each step are a split of one 16-row slice of the epoch's permutation."""
    from transformers.trainer_pt_utils import BatchRebalanceSampler

    lengths = list(np.random.default_rng(1).integers(20, 400, 64))
    sampler = BatchRebalanceSampler(lengths, 16, dp_size=1, grad_accum=4, seed=42, drop_last=False)
    batches = list(sampler)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(42)).tolist()
    for step in range(4):
        rows = sorted(i for batch in batches[4 * step : 4 * step + 4] for i in batch)
        assert rows == sorted(order[16 * step : 16 * step + 16])


def test_padding_efficiency_of_grouping_and_padding_free_beats_pad_to_longest():
    result = padding_efficiency(synthetic_lengths(1000), micro_batch=4, grad_accum=4, steps=200)
    assert result["padding_free"]["padding_efficiency"] == 1.0
    assert result["group_by_length"]["padding_efficiency"] >= 0.95
    base = result["pad_to_longest_random"]["padding_efficiency"]
    assert base < result["batch_rebalance"]["padding_efficiency"] < 1
    # batch_rebalance closes each epoch with one short step (1,000 rows = 62.5 steps of 16); the others run on
    assert all(15.5 <= r["sequences_per_step"] <= 16 for r in result.values())


def tiny_source(tiny_model_dir) -> ModelSource:
    return ModelSource(name="tiny", tokenizer_dir=str(tiny_model_dir), model_dir=str(tiny_model_dir))


def test_padding_free_loss_and_gradients_equal_the_padded_ones(tiny_model_dir):
    """SFTTrainer(padding_free=True) on SDPA: one packed row with position ids restarting per sequence gives the
    padded batch's loss and LoRA gradients (no attention across sequences)."""
    source = tiny_source(tiny_model_dir)
    lengths = Lengths(np.array([37, 120, 64, 90]), np.array([10, 40, 20, 30]), "fixed")
    rows = sft_training_rows(lengths, 4, source.shape().vocab_size, seed=3)
    result = padded_vs_padding_free(source, rows, LORA)
    assert result["shape_padded"][0] == 4 and result["shape_padding_free"][0] == 1
    assert result["loss_padded"] == pytest.approx(result["loss_padding_free"], abs=1e-5)
    assert result["max_abs_grad_difference"] < 1e-5 * max(result["max_abs_grad"], 1.0)


def test_a_steps_gradient_does_not_depend_on_its_micro_batch_split(tiny_model_dir, tmp_path):
    """Why batch_rebalance is exact: with the loss normalised by the step's trained-token count, regrouping the same
    rows into other micro-batches leaves the accumulated gradient unchanged."""
    from datasets import Dataset

    from fine_tune.models.loading import load_tokenizer

    source = tiny_source(tiny_model_dir)
    lengths = Lengths(np.array([30, 200, 45, 180, 60, 150, 75, 120]), np.array([10, 50, 12, 40, 20, 30, 25, 35]), "x")
    rows = sft_training_rows(lengths, 8, source.shape().vocab_size, seed=5)
    args = sft_args({"per_device_train_batch_size": 4}, {"max_length": None}, str(tmp_path), 1, torch.device("cpu"))
    from peft import LoraConfig

    trainer = metered_sft_trainer_class()(
        model=source.build(torch.float32),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(source.tokenizer_dir),
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=list(LORA["targets"])),
    )
    examples = [trainer.train_dataset[i] for i in range(8)]
    total = sum(sum(label != -100 for label in example["labels"][1:]) for example in examples)
    with torch.no_grad():
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))

    def step_gradient(split):
        trainer.model.train()
        trainer.model.zero_grad()
        for micro in split:
            batch = trainer.data_collator([examples[i] for i in micro])
            trainer.compute_loss(trainer.model, batch, num_items_in_batch=torch.tensor(total)).backward()
        return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}

    random_split = step_gradient([[0, 1, 2, 3], [4, 5, 6, 7]])
    by_length = step_gradient([[1, 3, 5], [7, 6, 4, 2, 0]])  # uneven sizes, as the rebalancing sampler makes
    for name, grad in random_split.items():
        torch.testing.assert_close(by_length[name], grad, rtol=1e-4, atol=1e-7)


def test_fp16_base_keeps_fp32_adapters_so_the_grad_scaler_can_unscale(tiny_model_dir, tmp_path):
    """On a T4 (precision auto -> fp16) the frozen base loads in fp16 and AMP's GradScaler unscales the trainable
    gradients, which it refuses to do for fp16 parameters: the LoRA factors must be fp32."""
    from datasets import Dataset
    from peft import LoraConfig

    from fine_tune.models.loading import load_tokenizer
    from fine_tune.models.precision import resolve_precision
    from fine_tune.train.common import training_dtype

    source = tiny_source(tiny_model_dir)
    dtype = training_dtype(resolve_precision("fp16"), use_peft=True)
    assert dtype == torch.float16
    rows = sft_training_rows(Lengths(np.array([40, 50]), np.array([10, 10]), "x"), 2, source.shape().vocab_size)
    trainer = metered_sft_trainer_class()(
        model=source.build(dtype),
        args=sft_args({}, {"max_length": None}, str(tmp_path), 1, torch.device("cpu")),
        train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(source.tokenizer_dir),
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules=list(LORA["targets"])),
    )
    trainable = {p.dtype for p in trainer.model.parameters() if p.requires_grad}
    frozen = {p.dtype for p in trainer.model.parameters() if not p.requires_grad}
    assert trainable == {torch.float32} and frozen == {torch.float16}


OVERHEAD = {
    "device": "cpu",
    "decode_step_seconds_batch16_merged_greedy": 0.01,
    "decode_step_seconds_batch8_lora_sampled": 0.02,
    "train_micro_batch_seconds_lora": 0.05,
    "train_micro_batch_seconds_lora_checkpointed": 0.1,
    "optimizer_step_seconds_lora": 0.01,
}


def test_t4_projection_follows_the_configs():
    import yaml

    lengths = synthetic_lengths(2000)
    sft = yaml.safe_load((REPO / "configs" / "sft.yaml").read_text())
    grpo = yaml.safe_load((REPO / "configs" / "grpo.yaml").read_text())
    evaluation = yaml.safe_load((REPO / "configs" / "eval.yaml").read_text())
    projection = project_t4(lengths, sft, grpo, evaluation, OVERHEAD, simulation_steps=100)
    scenarios = projection["sft"]["scenarios"]
    for strategy in STRATEGIES:
        assert (
            scenarios[f"{strategy}, checkpointing on"]["seconds_per_step"]
            > (scenarios[f"{strategy}, checkpointing off"]["seconds_per_step"])
        )
    # The configs as they are: their sampler (or padding-free), checkpointing per the recipe
    checkpointing = "on" if sft.get("activation_checkpointing") else "off"
    assert projection["sft"]["as_configured"]["strategy"] == sft_strategy(sft)
    assert projection["sft"]["projected_t4_seconds_per_step"] == pytest.approx(
        scenarios[f"{sft_strategy(sft)}, checkpointing {checkpointing}"]["seconds_per_step"], rel=1e-3
    )
    assert sft_strategy({"train_sampling_strategy": "batch_rebalance"}) == "batch_rebalance"
    assert sft_strategy({"padding_free": True, "train_sampling_strategy": "batch_rebalance"}) == "padding_free"
    assert sft_strategy({}) == "pad_to_longest_random"
    assert projection["sft"]["steps"] == sft["max_steps"]
    grpo_projection = projection["grpo"]
    assert grpo_projection["every_completion_to_the_cap"]["decode_steps"] == grpo["max_completion_length"]
    assert (
        grpo_projection["typical_completions"]["seconds_per_step"] < grpo_projection["projected_t4_seconds_per_step"]
    )
    faster = project_t4(lengths, sft, grpo, evaluation, OVERHEAD, mfu=0.6, simulation_steps=100)
    assert faster["sft"]["projected_t4_seconds_per_step"] < projection["sft"]["projected_t4_seconds_per_step"]


def test_device_peak_table():
    assert device_spec("Tesla T4").peak_flops["fp16"] == 65e12
    assert device_spec("Tesla T4").memory_bandwidth == 320e9
    assert device_spec("NVIDIA A100-SXM4-80GB").peak_flops["bf16"] == 312e12
    assert device_spec("NVIDIA A10G").name == "NVIDIA A10G"
    assert device_spec("NVIDIA H100 80GB HBM3").peak_flops["bf16"] == 989e12
    assert device_spec("NVIDIA H100 PCIe").name == "NVIDIA H100 PCIe"
    assert device_spec("NVIDIA L40S").name == "NVIDIA L40S"
    assert device_spec("NVIDIA L4").name == "NVIDIA L4"
    assert device_spec("Some Future GPU") is None


def test_output_names():
    assert output_stem({"type": "cpu"}, "full") == "cpu"
    assert output_stem({"type": "cpu"}, "quick") == "cpu-quick"
    assert output_stem({"type": "cuda", "name": "Tesla T4"}, "full") == "cuda-tesla-t4"
    assert (
        output_stem({"type": "cuda", "name": "NVIDIA A100-SXM4-80GB"}, "smoke") == "cuda-nvidia-a100-sxm4-80gb-smoke"
    )


def test_peak_memory_on_cpu_samples_rss():
    with PeakMemory(torch.device("cpu")) as memory:
        block = torch.ones(4_000_000)
        del block
    assert memory.peak > 16_000_000 and memory.kind == "process_rss_sampled"


def test_switch_values():
    assert [parse_switch(v) for v in (None, True, False, "AUTO", "yes", "off")] == [
        "auto",
        "true",
        "false",
        "auto",
        "true",
        "false",
    ]
    with pytest.raises(ValueError, match="expected one of"):
        parse_switch("sometimes")


def test_use_vllm_resolution():
    on = resolve_use_vllm("auto", vllm_version="0.25.0", capability=(8, 0), model_dtype="bfloat16")
    assert on.enabled and "colocated" in on.reason
    assert not resolve_use_vllm("false", vllm_version="0.25.0", capability=(8, 0)).enabled
    missing = resolve_use_vllm("auto", vllm_version=None, capability=(8, 0))
    assert not missing.enabled and "not installed" in missing.reason and "transformers" in missing.reason
    assert "no CUDA" in resolve_use_vllm("auto", vllm_version="0.25.0", capability=None).reason
    assert "outside the range" in resolve_use_vllm("auto", vllm_version="0.40.1", capability=(9, 0)).reason
    t4_bf16 = resolve_use_vllm("auto", vllm_version="0.25.0", capability=(7, 5), model_dtype="bfloat16")
    assert not t4_bf16.enabled and "fp16" in t4_bf16.reason
    assert resolve_use_vllm("auto", vllm_version="0.25.0", capability=(7, 5), model_dtype="float16").enabled
    with pytest.raises(AccelerationError, match="use_vllm: true, but vllm is not installed"):
        resolve_use_vllm("true", vllm_version=None, capability=None)


def test_use_vllm_auto_is_off_on_this_machine_without_error():
    """No vLLM and no CUDA in CI: auto falls back, whatever is installed."""
    resolution = resolve_use_vllm("auto")
    if not torch.cuda.is_available():
        assert not resolution.enabled and "no CUDA device" in resolution.reason


def test_use_kernels_resolution():
    assert resolve_use_kernels("auto", kernels_version="0.11.1", capability=(7, 5)).enabled
    assert not resolve_use_kernels("auto", kernels_version=None, capability=(8, 0)).enabled
    with pytest.raises(AccelerationError):
        resolve_use_kernels("true", kernels_version="0.11.1", capability=None)


def test_checkpoint_dtype(tmp_path):
    assert checkpoint_dtype(tmp_path) is None
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    assert checkpoint_dtype(tmp_path) == "bfloat16"
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "float16", "torch_dtype": "bfloat16"}))
    assert checkpoint_dtype(tmp_path) == "float16"
