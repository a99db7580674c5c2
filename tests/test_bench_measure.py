"""The measurements' building blocks: padding-free exactness, the step gradient's independence of its micro-batch
split, fp32 adapters over an fp16 base, peak memory, and the time cap."""

import time

import numpy as np
import pytest
import torch
from vllm_fakes import ENGINE_SIGNATURE, FakeLLM

from benchmarks.device import PeakMemory, TimeCapReached, time_cap
from benchmarks.lengths import Lengths
from benchmarks.measure_sft import metered_sft_trainer_class, padded_vs_padding_free, sft_args, sft_training_rows
from benchmarks.models import ModelSource

LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "targets": ("q_proj", "k_proj", "v_proj", "o_proj")}
pytestmark = pytest.mark.usefixtures("single_torch_thread")


pytest_plugins = ["vllm_fakes"]  # fixture: fake_vllm


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


def test_peak_memory_on_cpu_samples_rss():
    with PeakMemory(torch.device("cpu")) as memory:
        block = torch.ones(4_000_000)
        del block
    assert memory.peak > 16_000_000 and memory.kind == "process_rss_sampled"


def test_time_cap_interrupts_a_block_and_leaves_no_alarm_behind():
    start = time.perf_counter()
    with pytest.raises(TimeCapReached, match="busy: stopped at its time cap"), time_cap(0.2, "busy"):
        while True:
            time.sleep(0.01)
    assert time.perf_counter() - start < 2
    with time_cap(0.1, "quick"):
        pass
    time.sleep(0.3)  # a leftover alarm would fire here
    with pytest.raises(TimeCapReached, match="no time left"), time_cap(0, "late"):
        pass
    with time_cap(None, "uncapped"):
        pass


@pytest.fixture
def vllm_bench(fake_vllm, monkeypatch):
    """measure_eval with the stand-in vllm module, told vLLM can run."""
    from benchmarks import measure_eval

    monkeypatch.setattr(measure_eval, "vllm_unavailable", lambda device: None)
    return measure_eval


def test_the_benchmark_times_the_evals_own_vllm_path(vllm_bench, tiny_model_dir):
    """`vllm_generation` runs `generate_responses_vllm` (stand-in engine): the saved weights and tokenizer in the
    model's dtype, every prompt rendered and generated once."""
    messages = [[{"role": "user", "content": f"question {i}"}] for i in range(3)]
    out = vllm_bench.vllm_generation(tiny_source(tiny_model_dir), messages, 5, torch.device("cpu"), torch.float32)
    assert out["available"] is True and out["prompts_per_s"] > 0 and 3 <= out["generated_tokens"] <= 15
    [engine] = FakeLLM.instances
    assert "config.json" in engine.files and "tokenizer_config.json" in engine.files
    assert engine.kwargs["dtype"] == "float32" and len(engine.calls[0][0]) == 3


def test_a_vllm_engine_that_fails_is_recorded_with_its_reason(vllm_bench, fake_vllm, monkeypatch, tiny_model_dir):
    def broken(*args, **kwargs):
        ENGINE_SIGNATURE.bind(*args, **kwargs)  # the call is one vLLM's engine accepts; then it fails
        raise RuntimeError("no GPU memory left")

    monkeypatch.setattr(fake_vllm, "LLM", broken)
    out = vllm_bench.vllm_generation(
        tiny_source(tiny_model_dir), [[{"role": "user", "content": "q"}]], 4, torch.device("cpu"), torch.float32
    )
    assert out == {"available": False, "reason": "vLLM failed: RuntimeError: no GPU memory left"}
