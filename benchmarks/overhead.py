"""Host overhead: what a step costs beyond the device's arithmetic, measured on a narrow twin of Qwen3-0.6B (same
28 layers, heads and modules, width 64): at that width a step is nearly all framework dispatch (Python, ATen, kernel
launches). On a GPU it is measured on the GPU; on the CPU it is the CPU-side cost a GPU host also pays."""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.cost import ModelShape
from benchmarks.device import timed
from benchmarks.settings import Settings, lora_config


def narrow_twin_config(shape: ModelShape):
    return shape.qwen3_config(
        vocab_size=1024,
        hidden_size=64,
        intermediate_size=128,
        head_dim=8,
        pad_token_id=0,
        eos_token_id=None,
        bos_token_id=None,
    )


def measure_host_overhead(
    shape: ModelShape, lora: dict[str, Any], settings: Settings, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = narrow_twin_config(shape)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype).to(device).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    n = max(settings.overhead_decode_tokens, 2)
    repeats = settings.overhead_repeats

    def decode_step(net, batch: int, sample: bool) -> float:
        ids = torch.randint(1, 1024, (batch, 16), device=device)
        mask = torch.ones_like(ids)

        def run(tokens: int):
            with torch.inference_mode():
                net.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=tokens,
                    min_new_tokens=tokens,
                    do_sample=sample,
                    temperature=1.0 if sample else None,
                    top_p=None,
                    top_k=None,
                )

        whole = timed(device, lambda: run(n), repeats)
        first = timed(device, lambda: run(1), repeats)
        return max(whole - first, 0.0) / (n - 1)

    merged_b16 = decode_step(model, 16, sample=False)
    lora_model = get_peft_model(model, lora_config({**lora, "dropout": 0.05}))
    lora_b8 = decode_step(lora_model, 8, sample=True)

    lora_model.train()
    # One tiny micro-batch: at width 64 and 8 tokens the arithmetic is negligible and the time is dispatch
    batch = torch.randint(1, 1024, (1, 8), device=device)

    def train_micro_batch():
        out = lora_model(input_ids=batch, labels=batch, use_cache=False)
        out.loss.backward()

    micro = timed(device, train_micro_batch, repeats)
    lora_model.base_model.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora_model.base_model.model.enable_input_require_grads()
    micro_checkpointed = timed(device, train_micro_batch, repeats)
    optimizer = torch.optim.AdamW([p for p in lora_model.parameters() if p.requires_grad], lr=1e-4)

    def optimizer_step():
        optimizer.step()
        optimizer.zero_grad(set_to_none=False)

    train_micro_batch()
    step = timed(device, optimizer_step, repeats)
    return {
        "twin": (
            "Qwen3-0.6B's layers, heads and modules at width 64 (hidden 64, head_dim 8, intermediate 128, vocab 1024)"
        ),
        "device": device.type,
        "decode_step_seconds_batch16_merged_greedy": merged_b16,
        "decode_step_seconds_batch8_lora_sampled": lora_b8,
        "train_micro_batch_seconds_lora": micro,
        "train_micro_batch_seconds_lora_checkpointed": micro_checkpointed,
        "optimizer_step_seconds_lora": step,
    }
